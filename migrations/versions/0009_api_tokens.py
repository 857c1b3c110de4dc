"""api token families and refresh tokens: API sign-ins, refresh rotation, reuse detection

Revision ID: 0009_api_tokens
Revises: 0008_dayend_indexes
Create Date: 2026-11-28

Nothing here is ever deleted by the application; a family is revoked by setting revoked_at.
"""
from alembic import op
import sqlalchemy as sa

revision = '0009_api_tokens'
down_revision = '0008_dayend_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_token_families',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('family_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_token_families_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token_families')),
    sa.UniqueConstraint('family_id', name=op.f('uq_api_token_families_family_id'))
    )
    op.create_index('ix_api_token_families_user_id', 'api_token_families', ['user_id'])
    op.create_index('ix_api_token_families_expires_at', 'api_token_families', ['expires_at'])
    op.create_table('api_refresh_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('jti', sa.String(length=32), nullable=False),
    sa.Column('family_id', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['family_id'], ['api_token_families.id'],
                            name=op.f('fk_api_refresh_tokens_family_id_api_token_families')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_refresh_tokens')),
    sa.UniqueConstraint('jti', name=op.f('uq_api_refresh_tokens_jti'))
    )
    op.create_index('ix_api_refresh_tokens_family_id', 'api_refresh_tokens', ['family_id'])


def downgrade() -> None:
    op.drop_index('ix_api_refresh_tokens_family_id', table_name='api_refresh_tokens')
    op.drop_table('api_refresh_tokens')
    op.drop_index('ix_api_token_families_expires_at', table_name='api_token_families')
    op.drop_index('ix_api_token_families_user_id', table_name='api_token_families')
    op.drop_table('api_token_families')
