"""seat_sessions.last_active: the seat's last operator call, for the server's idle logout

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('seat_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_active', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE seat_sessions SET last_active = since")


def downgrade() -> None:
    with op.batch_alter_table('seat_sessions', schema=None) as batch_op:
        batch_op.drop_column('last_active')
