"""admin console: case-insensitive prefix search on the user id

Revision ID: 0006_user_search
Revises: 0005
Create Date: 2026-12-01 11:40:00

An expression index on lower(user_id); on PostgreSQL with text_pattern_ops so that
``lower(user_id) LIKE 'abc%'`` is an index range scan whatever the database's collation.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006_user_search'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_connections_user_id_lower', 'connections',
                    [sa.func.lower(sa.text('user_id')).label('user_id_lower')], unique=False,
                    postgresql_ops={'user_id_lower': 'text_pattern_ops'})


def downgrade():
    op.drop_index('ix_connections_user_id_lower', table_name='connections')
