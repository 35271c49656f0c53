"""``clinepipe.toml``: loaded with :mod:`tomllib` into frozen dataclasses and validated.

An unknown key or a value of the wrong type is one sentence naming the key and the file.
Relative paths are resolved against the folder of the config file.

``sections`` holds the dataclasses, ``checks`` the accepted values of every key, ``loading``
finding and reading the file, ``template`` the file ``clinepipe init`` writes.
"""

from clinepipe.config.loading import (
                                       config_from_dict,
                                       find_config,
                                       load_config,
                                       require_site,
)
from clinepipe.config.sections import (
                                       CONFIG_ENV,
                                       CONFIG_NAME,
                                       SITE_KEYS,
                                       AavsoConfig,
                                       ArchiveConfig,
                                       AstrometryConfig,
                                       CameraConfig,
                                       CatalogConfig,
                                       Config,
                                       DatabaseConfig,
                                       ExecutionConfig,
                                       HeadersConfig,
                                       KnownVariablesConfig,
                                       PathsConfig,
                                       PhotometryConfig,
                                       QcConfig,
                                       ReductionConfig,
                                       SiteConfig,
                                       StarsConfig,
                                       TransformConfig,
                                       TransitsConfig,
                                       VariablesConfig,
                                       WebConfig,
)
from clinepipe.config.template import DEFAULT_CONFIG, default_config_text

__all__ = ["CONFIG_ENV", "CONFIG_NAME", "DEFAULT_CONFIG", "SITE_KEYS", "AavsoConfig",
           "ArchiveConfig", "AstrometryConfig", "CameraConfig", "CatalogConfig", "Config",
           "DatabaseConfig", "ExecutionConfig", "HeadersConfig", "KnownVariablesConfig",
           "PathsConfig", "PhotometryConfig", "QcConfig", "ReductionConfig", "SiteConfig",
           "StarsConfig", "TransformConfig", "TransitsConfig", "VariablesConfig", "WebConfig",
           "config_from_dict", "default_config_text", "find_config", "load_config",
           "require_site"]
