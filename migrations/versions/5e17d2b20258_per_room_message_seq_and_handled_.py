"""per-room message seq and handled mentions

Revision ID: 5e17d2b20258
Revises: 9ae37e631f50
Create Date: 2026-11-25 10:14:23.781117

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e17d2b20258'
down_revision = '9ae37e631f50'
branch_labels = None
depends_on = None

# SQLite rebuilds the table in batch mode; message ids must stay never-reused.
KEEP_AUTOINCREMENT = {'sqlite_autoincrement': True}


def upgrade():
    # Rooms count their messages; existing messages are numbered in id order, per room.
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seq', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE messages SET seq = numbered.rn FROM ("
        " SELECT id, row_number() OVER (PARTITION BY room_id ORDER BY id) AS rn FROM messages"
        ") AS numbered WHERE messages.id = numbered.id"
    )
    op.execute(
        "UPDATE rooms SET last_seq = COALESCE((SELECT MAX(seq) FROM messages WHERE messages.room_id = rooms.id), 0)"
    )
    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_messages_room_id_seq'), ['room_id', 'seq'])

    # Mentions handled before this revision count as handled: the sweep is for new losses.
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_mentions_handled_at', ['handled_at'], unique=False)
    op.execute("UPDATE mentions SET handled_at = CURRENT_TIMESTAMP")


def downgrade():
    with op.batch_alter_table('mentions', schema=None) as batch_op:
        batch_op.drop_index('ix_mentions_handled_at')
        batch_op.drop_column('handled_at')

    with op.batch_alter_table('messages', schema=None, table_kwargs=KEEP_AUTOINCREMENT) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_messages_room_id_seq'), type_='unique')
        batch_op.drop_column('seq')

    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('last_seq')
