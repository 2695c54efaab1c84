"""connections: when the refresh token expires (absolute, idle) and whether that was announced

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:20:00
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_token_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('refresh_token_idle_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('refresh_token_expiry_warned_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_connections_refresh_token_expires_at'),
                              ['refresh_token_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_connections_refresh_token_idle_expires_at'),
                              ['refresh_token_idle_expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connections_refresh_token_idle_expires_at'))
        batch_op.drop_index(batch_op.f('ix_connections_refresh_token_expires_at'))
        batch_op.drop_column('refresh_token_expiry_warned_at')
        batch_op.drop_column('refresh_token_idle_expires_at')
        batch_op.drop_column('refresh_token_expires_at')
