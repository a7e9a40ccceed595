"""The history store: tables, migrations and queries for what tesoro observed (SQLAlchemy Core,
SQLite or PostgreSQL). It knows the domain's models and nothing above them."""
