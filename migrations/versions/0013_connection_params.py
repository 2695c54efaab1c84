"""connection params: the per-connection values of templated provider URLs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 14:55:00

connections.params: the values of the provider entry's declared ``params`` (a Zendesk subdomain,
Salesforce's instance_url, QuickBooks' realm id), validated against their patterns before they are
stored, used by refresh, revocation, account lookup and the proxy. revocation_tasks.params: the
same values as they were when the task's token was taken (a reconnect may change the connection's).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'  # the brief said 0011; h-start's 0012 is merged into this branch
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections') as batch_op:
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
    with op.batch_alter_table('revocation_tasks') as batch_op:
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('revocation_tasks') as batch_op:
        batch_op.drop_column('params')
    with op.batch_alter_table('connections') as batch_op:
        batch_op.drop_column('params')
