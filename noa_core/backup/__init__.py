"""Backups of NOA_HOME: de-duplicated, encrypted snapshots on a local, S3 or Azure Blob backend."""
