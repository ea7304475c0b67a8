from tunesmith.config.load import ConfigError, load_config, save_resolved
from tunesmith.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig", "load_config", "save_resolved"]
