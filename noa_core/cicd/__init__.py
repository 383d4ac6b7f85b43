"""The CI/CD pipeline's own steps, Prefect-free: fetching a source for one run
(:mod:`.trigger`), the validate stage's checks (:mod:`.checks`) and watching a release's
health after a deploy (:mod:`.monitor`). The flow that chains them with the build, test and
deploy flows is ``flows/cicd_pipeline.py``."""
