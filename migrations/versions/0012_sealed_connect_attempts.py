"""sealed connect attempts: the used attempts' ids replace the pending authorization requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:00:00

/connect/start no longer writes: the attempt is sealed into the browser's cookie and the state
(app/connect/attempt.py). connect_attempts_used keeps the id of each attempt whose callback was
accepted, until it expires, so a callback is accepted once. Connects pending during the upgrade
fail their callback with the "not valid" page; the user presses Connect again.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('connect_attempts_used',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connect_attempts_used'))
    )
    with op.batch_alter_table('connect_attempts_used', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connect_attempts_used_expires_at'), ['expires_at'], unique=False)
    with op.batch_alter_table('authorization_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_requests_expires_at'))
    op.drop_table('authorization_requests')


def downgrade():
    op.create_table('authorization_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('return_to', sa.Text(), nullable=False),
    sa.Column('code_verifier_enc', sa.Text(), nullable=True),
    sa.Column('nonce', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_authorization_requests')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_authorization_requests_state_hash'))
    )
    with op.batch_alter_table('authorization_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_requests_expires_at'), ['expires_at'], unique=False)
    with op.batch_alter_table('connect_attempts_used', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connect_attempts_used_expires_at'))
    op.drop_table('connect_attempts_used')
