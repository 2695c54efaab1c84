"""admin console: case-insensitive prefix search on the user id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:40:00

An expression index on (lower(user_id), id); on PostgreSQL lower(user_id COLLATE "C") (byte
order), so that a prefix is one index range, read in order, whatever the database's collation.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    key = 'lower(user_id COLLATE "C")' if op.get_context().dialect.name == 'postgresql' else 'lower(user_id)'
    op.create_index('ix_connections_user_id_lower', 'connections', [sa.text(key), 'id'], unique=False)


def downgrade():
    op.drop_index('ix_connections_user_id_lower', table_name='connections')
