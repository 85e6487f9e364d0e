"""classification and the model registry: incidents' categories, people's category labels, model versions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

``incidents`` gains its category, the model's confidence, who set it (model or person) and the model version.
``category_labels`` keeps people's picks and corrections as labelled examples. ``model_versions`` registers
every trained model version with its card and metrics; the champion of a kind is its latest promotion not
rolled back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("category_confidence", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("category_source", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("category_model", sa.String(length=80), nullable=True))
    op.create_table(
        "category_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("previous", sa.String(length=40), nullable=True),
        sa.Column("model_confidence", sa.Float(), nullable=True),
        sa.Column("texts", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_category_labels_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_labels")),
        sa.UniqueConstraint("incident_id", name=op.f("uq_category_labels_incident_id")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promoted_by", sa.String(length=200), nullable=True),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("kind", "version", name="uq_model_versions_kind_version"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index("ix_model_versions_kind_promoted", ["kind", "promoted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_model_versions_kind_promoted")
    op.drop_table("model_versions")
    op.drop_table("category_labels")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        for column in ("category_model", "category_source", "category_confidence", "category"):
            batch_op.drop_column(column)
