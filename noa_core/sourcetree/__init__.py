"""A received source tree, read safely: listing and reading a hostile tree without following links
or opening anything but regular files (:mod:`.safe_fs`), and telling test code from the rest
(:mod:`.test_paths`). Shared by the analyzers, the project environments and the workspace
dependency graph, so none of them imports another for it."""
