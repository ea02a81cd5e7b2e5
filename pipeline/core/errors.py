"""The failures a user can cause or fix: each becomes one `Error:` line, not a traceback.

They live in one light module so that the command wrapper can catch them all without
importing the modules that raise them (torch, requests, mlflow)."""


class PipelineError(Exception):
    """Something about the input, the data or the environment that the user can fix."""


class ConfigError(PipelineError, ValueError):
    """params.yaml (or the machine-local mirrors file) has a missing, unknown or invalid value."""


class SourceError(PipelineError, ValueError):
    """A data source does not have the content or layout we rely on."""


class DownloadError(PipelineError, RuntimeError):
    """A download failed for good (after retries, or for a reason retrying cannot fix)."""


class ArchiveError(PipelineError, RuntimeError):
    """An archive is corrupt, truncated or contains a member we refuse to extract."""


class TrainingDiverged(PipelineError, RuntimeError):
    """The loss became NaN or infinite."""


class TrackingUnavailable(PipelineError, RuntimeError):
    """The tracking store cannot be reached."""
