"""observability: the request id on audit events, and an index for the connections gauge

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 12:20:00

audit_events.request_id: the X-Request-ID of the request that recorded the event (NULL outside a
request, e.g. the CLI). ix_connections_provider_status: /metrics counts connections by provider and
status with one GROUP BY that PostgreSQL answers by an index-only scan.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))
    op.create_index('ix_connections_provider_status', 'connections', ['provider', 'status'], unique=False)


def downgrade():
    op.drop_index('ix_connections_provider_status', table_name='connections')
    with op.batch_alter_table('audit_events') as batch_op:
        batch_op.drop_column('request_id')
