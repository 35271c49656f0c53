"""Reference catalogs and star identities: file and Vizier catalogs, known variables, cross-matching."""
