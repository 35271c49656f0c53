"""The database at the edge of the pipeline: models, engine and migrations, exports."""

from clinepipe.store.models import (
                     Base,
                     CatalogMatch,
                     Frame,
                     Master,
                     Measurement,
                     Run,
                     Star,
                     ZeroPoint,
)

__all__ = ["Base", "CatalogMatch", "Frame", "Master", "Measurement", "Run", "Star", "ZeroPoint"]
