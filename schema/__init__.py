"""The mapping model and everything derived from it: SQL metadata and Alembic migrations."""

from schema.model import Attribute, MappingError, Mappings, TableMapping, load_mappings

__all__ = ["Attribute", "Mappings", "MappingError", "TableMapping", "load_mappings"]
