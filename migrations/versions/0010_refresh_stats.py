"""admin dashboard: refresh observations and their hourly rollup

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:20:00

refresh_observations: one row per refresh (outcome, duration), append-only, emptied by the rollup.
refresh_rollups: refreshes per (hour, provider, outcome, duration bucket), read by the dashboard.
connection_counts: connections per (provider, status), counted by the worker every few minutes.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'refresh_observations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_observations')),
    )
    op.create_table(
        'refresh_rollups',
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('le_ms', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('hour', 'provider', 'outcome', 'le_ms', name=op.f('pk_refresh_rollups')),
    )
    op.create_table(
        'connection_counts',
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('counted_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('provider', 'status', name=op.f('pk_connection_counts')),
    )


def downgrade():
    op.drop_table('connection_counts')
    op.drop_table('refresh_rollups')
    op.drop_table('refresh_observations')
