from tasks.config.load import ConfigError, load_config, save_resolved
from tasks.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig", "load_config", "save_resolved"]
