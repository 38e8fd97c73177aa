"""The server's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL; migrations mirror it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BigInteger ids become plain INTEGER on SQLite so that they stay rowid aliases (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Times are stored as UTC ISO 8601 strings ("2026-11-22T13:00:00.000000+00:00"): they sort correctly
# as text on both engines and read back the same everywhere.
TS = String(40)

users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("sites", Text, nullable=False),  # JSON list; ["*"] is every site
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)

stations = Table(
    "stations",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=True),
    Index("ix_stations_site", "site_id"),
)

# The last state each station reported for each of its devices (from device_status events):
# what the stations page and the report show now, without scanning the event history.
device_states = Table(
    "device_states",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("device", String(64), primary_key=True),
    Column("up", Boolean, nullable=False),
    Column("detail", String(200), nullable=False),
    Column("at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # user | station
    Column("username", String(64), nullable=True),
    Column("station_id", String(64), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_login_failures_user", "username", "at"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("station_id", String(64), nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(16), nullable=False),
    Column("at", TS, nullable=False),
    Column("day", String(10), nullable=False),
    Column("waybill", String(64), nullable=True),
    Column("tracking_id", String(64), nullable=True),
    Column("decision", String(8), nullable=True),
    Column("payload_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", TS, nullable=False),
    # The station's site at ingest (the sharding key a distributed PostgreSQL would place rows by), and
    # the retention class: 'hit' (HOLD/PULL parcels) or 'cleared'. On PostgreSQL `events` is partitioned
    # by class and then by day (server/partitions.py); unique keys there must hold both, so idempotency by
    # `key` alone is kept by ingest (server/ingest.py) and `ix_events_key` is its backstop.
    Column("site_id", String(64), nullable=False),
    Column("retention_class", String(8), nullable=False),
    Index("ix_events_key", "key", "site_id", "retention_class", "day", unique=True),
    Index("ix_events_station_seq", "station_id", "boot_id", "seq"),
    Index("ix_events_day_type", "day", "type", "station_id"),
    Index("ix_events_waybill", "waybill"),
    # A divert outcome finds its pull's parcel event (and so the day it is counted on) by this.
    Index("ix_events_station_tracking", "station_id", "tracking_id"),
)

# Per day, station and metric counters kept in step with `events` at ingest: reports read these.
daily_counts = Table(
    "daily_counts",
    metadata,
    Column("day", String(10), nullable=False),
    Column("station_id", String(64), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("key", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "station_id", "metric", "key"),
)

# Which sites' events name an image: an officer sees an evidence image only through one of these.
image_sites = Table(
    "image_sites",
    metadata,
    Column("sha256", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    PrimaryKeyConstraint("sha256", "site_id"),
)

images = Table(
    "images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("content_type", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("station_id", String(64), nullable=True),
    Column("created_at", TS, nullable=False),
)

senders = Table(
    "senders",
    metadata,
    Column("sender_token", String(64), primary_key=True),
    Column("id_type", String(16), nullable=False),
    Column("id_masked", String(64), nullable=False),
    Column("name_masked", String(64), nullable=False),
    Column("phone_token", String(64), nullable=True),
    Column("phone_masked", String(32), nullable=True),
    Column("address_token", String(64), nullable=True),
    Column("sealed", Text, nullable=False),  # encrypted JSON of the full record
    Column("verified", Boolean, nullable=False),
    Column("verified_at", TS, nullable=True),
    Column("outlet", String(128), nullable=False),
    Column("courier", String(128), nullable=False),
    Column("agreement_customer", Boolean, nullable=False),
    Column("usc_code", String(18), nullable=True),
    Column("qualification", String(64), nullable=False),
    Column("updated_at", TS, nullable=False),
    # Token of the agreement customer's credit code (as organisation watch entries token it).
    Column("customer_token", String(64), nullable=True),
    Index("ix_senders_phone", "phone_token"),
    Index("ix_senders_address", "address_token"),
    Index("ix_senders_customer", "customer_token"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("waybill", String(64), primary_key=True),
    Column("sender_token", String(64), nullable=False),
    Column("declared_name", String(200), nullable=False),
    Column("declared_category", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("inspected_on_receipt", Boolean, nullable=False),
    Column("updated_at", TS, nullable=False),
    # Keyed token of the normalised recipient address (a node of the link graph).
    Column("destination_token", String(64), nullable=True),
    Index("ix_manifests_sender", "sender_token"),
    Index("ix_manifests_destination", "destination_token"),
)

watchlist = Table(
    "watchlist",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("list", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    Column("masked", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(128), nullable=False),
    Column("expires_at", TS, nullable=True),
    Column("appeal_status", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    # Where the entry applies: site (scope_ref is the site), region (a named set of sites in the
    # settings) or network (every site, scope_ref NULL). Stations receive only entries for their site.
    Column("scope", String(8), nullable=False, server_default="network"),
    Column("scope_ref", String(64), nullable=True),
    Index("ix_watchlist_token", "token"),
    Index("ix_watchlist_scope", "scope", "scope_ref"),
)

# Every registry write appends here; a station's registry cursor is the last `cursor` it holds.
registry_log = Table(
    "registry_log",
    metadata,
    Column("cursor", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # sender | manifest | watch
    Column("ref", String(64), nullable=False),
    Column("at", TS, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(36), nullable=False, unique=True),
    Column("scope", String(8), nullable=False),
    Column("waybill", String(64), nullable=True),
    Column("sender_token", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("issuer", String(128), nullable=False),
    Column("site_id", String(64), nullable=True),  # NULL: every station of the network
    Column("origin_station_id", String(64), nullable=True),  # not ordered: it raised the order
    Column("source_event_key", String(200), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("cancelled_at", TS, nullable=True),
    # Who cancelled the order and why (with cancelled_at; the audit log holds the same).
    Column("cancelled_by", String(64), nullable=True),
    Column("cancel_reason", Text, nullable=True),
    Index("ix_orders_site", "site_id", "expires_at"),
    Index("ix_orders_waybill", "waybill"),
    Index("ix_orders_created", "created_at"),
)

order_states = Table(
    "order_states",
    metadata,
    Column("order_seq", BigInteger, nullable=False),
    Column("station_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("event_key", String(200), nullable=True),
    PrimaryKeyConstraint("order_seq", "station_id"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_key", String(200), nullable=False, unique=True),
    Column("station_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("waybill", String(64), nullable=True),
    Column("tracking_id", String(64), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list
    Column("risk", Float, nullable=False),
    Column("sender_token", String(64), nullable=True),
    Column("category", String(64), nullable=True),
    Column("priority", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("day", String(10), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("due_at", TS, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("lease_until", TS, nullable=True),
    Column("claimed_from", String(16), nullable=True),
    Column("outcome", String(24), nullable=True),
    Column("outcome_fields", Text, nullable=True),  # JSON of the decision's required fields
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", TS, nullable=True),
    Column("statutory_due_at", TS, nullable=True),
    Index("ix_reviews_queue", "state", "priority", "due_at"),
    Index("ix_reviews_day", "day", "site_id"),
    Index("ix_reviews_sender", "sender_token"),
)

gallery = Table(
    "gallery",
    metadata,
    Column("ref_id", String(36), primary_key=True),
    Column("image_sha256", String(64), nullable=False),
    Column("label", String(128), nullable=False),
    Column("category", String(64), nullable=True),
    Column("kind", String(16), nullable=True),
    Column("review_id", BigInteger, nullable=True),
    Column("added_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("image_sha256", "label", name="uq_gallery_image_label"),
)

model_artifacts = Table(
    "model_artifacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # model | head | gallery
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("mode", String(8), nullable=False),  # active | shadow
    Column("manifest", Text, nullable=False),  # JSON
    Column("published_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("name", "version", name="uq_model_name_version"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("n", BigInteger, nullable=False, unique=True),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# The sites an audit entry is about ("*": the whole network); an entry is listed to a caller only when
# all of its sites are theirs. Kept beside the chain, not in it: it decides who reads, not what happened.
audit_scope = Table(
    "audit_scope",
    metadata,
    Column("n", BigInteger, nullable=False),
    Column("site_id", String(64), nullable=False),
    PrimaryKeyConstraint("n", "site_id"),
    Index("ix_audit_scope_site", "site_id"),
)

# --- cases (server.cases): review items grouped for detention, rights holder, decision and disposal ---

# A case groups review items (parcels of one sender or consignment); its sites are those of its items.
cases = Table(
    "cases",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("site_id", String(64), nullable=False),  # the site of the first item: deadlines and zone
    Column("owner", String(64), nullable=False),
    Column("state", String(24), nullable=False),
    Column("state_since", TS, nullable=False),
    Column("due_key", String(32), nullable=True),  # the jurisdiction rule the current deadline follows
    Column("due_at", TS, nullable=True),
    Column("rights_holder_id", BigInteger, nullable=True),
    Column("outcome", String(16), nullable=True),  # counterfeit | genuine | no_reply
    Column("fields", Text, nullable=False),  # JSON: what each step recorded (legal basis, authority...)
    Column("version", Integer, nullable=False),  # bumped by every change: concurrent edits conflict
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("closed_at", TS, nullable=True),
    Index("ix_cases_state_due", "state", "due_at"),
    Index("ix_cases_site", "site_id"),
)

# An item belongs to at most one case.
case_items = Table(
    "case_items",
    metadata,
    Column("case_id", BigInteger, nullable=False),
    Column("review_id", BigInteger, nullable=False, unique=True),
    Column("site_id", String(64), nullable=False),
    Column("added_by", String(64), nullable=False),
    Column("added_at", TS, nullable=False),
    PrimaryKeyConstraint("case_id", "review_id"),
)

rights_holders = Table(
    "rights_holders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("brand", String(128), nullable=False, unique=True),
    Column("contact_name", String(128), nullable=False),
    Column("email", String(254), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("address", String(500), nullable=False),
    Column("language", String(2), nullable=False),  # zh | en: the notification's template
    Column("trademarks", Text, nullable=False),  # JSON list of {number, mark, classes}
    Column("active", Boolean, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

case_notifications = Table(
    "case_notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False),
    Column("rights_holder_id", BigInteger, nullable=False),
    Column("language", String(2), nullable=False),
    Column("recipient", String(254), nullable=True),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("channel", String(8), nullable=False),  # smtp | export
    Column("message_id", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("delivered_at", TS, nullable=True),  # sent by SMTP, or handed over after export
    Column("send_error", String(500), nullable=True),
    Column("reply_due_at", TS, nullable=True),
    Column("reply", String(16), nullable=True),  # counterfeit | genuine | no_reply
    Column("reply_at", TS, nullable=True),
    Column("reply_note", Text, nullable=True),
    Column("reply_by", String(64), nullable=True),
    Index("ix_case_notifications_case", "case_id"),
)

# Samples handed to the rights holder for examination, with who released them to whom.
case_samples = Table(
    "case_samples",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False),
    Column("review_id", BigInteger, nullable=False),
    Column("description", String(500), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("released_to", String(200), nullable=False),
    Column("receipt_reference", String(128), nullable=False),
    Column("released_by", String(64), nullable=False),
    Column("released_at", TS, nullable=False),
    Index("ix_case_samples_case", "case_id"),
)

# What happened to the seized goods of one item: one record per item.
disposals = Table(
    "disposals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False),
    Column("review_id", BigInteger, nullable=False, unique=True),
    Column("method", String(16), nullable=False),  # destruction | donation | return
    Column("place", String(300), nullable=False),
    Column("done_on", String(10), nullable=False),  # YYYY-MM-DD, the site's local day
    Column("witnesses", Text, nullable=False),  # JSON list of names
    Column("photos", Text, nullable=False),  # JSON list of image sha256 (images table)
    Column("certificate_ref", String(128), nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", TS, nullable=False),
    Index("ix_disposals_case", "case_id"),
)

# Images labelled by an outcome (a closed case, an open-box result): what heads are retrained on.
labelled_examples = Table(
    "labelled_examples",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("image_sha256", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("category", String(64), nullable=True),
    Column("label", String(64), nullable=False),
    Column("source", String(16), nullable=False),  # case | open_box
    Column("case_id", BigInteger, nullable=True),
    Column("review_id", BigInteger, nullable=True),
    Column("parcel", String(200), nullable=False),  # station:tracking id: images of one parcel, one group
    Column("site_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("image_sha256", "source", "label", name="uq_labelled_image_source_label"),
    Index("ix_labelled_kind_label", "kind", "label"),
)

# A referral of review items (or a case) to an authority: the package sent (letter PDF and signed
# evidence bundle) and the reply, once it comes: the receipt and the authority's own case number.
referrals = Table(
    "referrals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("item_ids", Text, nullable=False),  # JSON list of review item ids
    Column("case_id", String(64), nullable=True),
    Column("sites", Text, nullable=False),  # JSON list: who may see the referral (all of them)
    Column("authority", String(32), nullable=False),
    Column("case_reference", String(200), nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 of the bundle's signed manifest
    Column("key_sha256", String(64), nullable=False),
    Column("package", LargeBinary, nullable=False),  # zip: the letter and the bundle, as sent
    Column("package_sha256", String(64), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("receipt_ref", String(200), nullable=True),
    Column("received_at", TS, nullable=True),
    Column("authority_case_number", String(200), nullable=True),
    Column("reply_by", String(64), nullable=True),
    Column("reply_at", TS, nullable=True),
    Index("ix_referrals_case", "case_id"),
)

# --- retention --------------------------------------------------------------------------------------

# A legal hold keeps an item, and everything it depends on (events, images, sender record), from
# retention until it is released. target_type is 'review' (an id of `reviews`) or 'case'.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("target_type", String(16), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(64), nullable=False),
    Column("placed_at", TS, nullable=False),
    Column("released_by", String(64), nullable=True),
    Column("released_at", TS, nullable=True),
    Column("release_reason", Text, nullable=True),
    Index("ix_legal_holds_target", "target_type", "target_id"),
)

# One row per real retention run: what it deleted so far, per class, committed with each chunk, so that
# a run cut short is counted (and audited) by the next one. The lease keeps two runs from overlapping.
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("actor", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running | done | interrupted
    Column("started_at", TS, nullable=False),
    Column("lease_until", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("cutoffs", Text, nullable=False),  # JSON: class -> first day (or time) kept
    Column("counts", Text, nullable=False),  # JSON: class -> rows deleted
    Index("ix_retention_runs_state", "state"),
)

# Where the audit chain starts once its oldest entries were pruned: the first entry kept and the hash
# it follows, signed with a key derived from the secret key (a row written by hand does not verify).
audit_base = Table(
    "audit_base",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("first_n", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
    Column("at", TS, nullable=False),
)

# -- link graph, split shipments and sender risk ---------------------------------------------------
# The link graph: parcels (parcel events) link to their manifest's sender and destination, senders to
# their phone, address, credit code and outlet, all through the registry's own indexed columns; what
# ingest adds is the hit images, linked through the known counterfeit reference they are nearest to.
link_edges = Table(
    "link_edges",
    metadata,
    Column("parcel_id", BigInteger, nullable=False),  # events.id
    Column("kind", String(8), nullable=False),  # image
    Column("token", String(128), nullable=False),
    Column("sender_token", String(64), nullable=True),
    Column("at", TS, nullable=False),
    PrimaryKeyConstraint("parcel_id", "kind", "token"),
    Index("ix_link_edges_node", "kind", "token"),
)

# Split-shipment clusters found by the detection job, with their score and explanation.
link_clusters = Table(
    "link_clusters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("cluster_id", String(36), nullable=False, unique=True),
    Column("score", Float, nullable=False),
    Column("parcels", Integer, nullable=False),
    Column("senders", Integer, nullable=False),
    Column("first_at", TS, nullable=False),
    Column("last_at", TS, nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("explain", Text, nullable=False),  # JSON: the score's parts and the shared nodes
    Column("review_id", BigInteger, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

link_cluster_members = Table(
    "link_cluster_members",
    metadata,
    Column("cluster_id", String(36), nullable=False),
    Column("parcel_id", BigInteger, nullable=False),  # events.id
    PrimaryKeyConstraint("cluster_id", "parcel_id"),
    Index("ix_link_cluster_members_parcel", "parcel_id"),
)

# Each sender's risk from its history, with the contributions that explain it.
sender_risks = Table(
    "sender_risks",
    metadata,
    Column("sender_token", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("contributions", Text, nullable=False),  # JSON list of {"kind", "count", "weight"}
    Column("updated_at", TS, nullable=False),
)
