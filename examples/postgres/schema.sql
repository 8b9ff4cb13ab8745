-- The tables the recipe keeps equal to a WordPress site (examples/postgres/README.md).
-- Idempotent: the consumer runs it at every start.

-- One row per post that exists: the columns most queries want, plus the whole wp_posts row.
CREATE TABLE IF NOT EXISTS posts (
    blog_id       integer NOT NULL,
    post_id       bigint  NOT NULL,
    post_type     text    NOT NULL,
    post_status   text,
    post_title    text,
    post_name     text,
    post_content  text,
    post_excerpt  text,
    post_author   bigint,
    post_parent   bigint,
    menu_order    integer,
    post_date     timestamp,
    post_modified timestamp,
    url           text,              -- link.after.url: the permalink as WordPress makes it
    path          text,              -- link.after.path
    row           jsonb   NOT NULL,  -- the event's `after`, as it came
    -- The size policy cut something (a $truncated marker, an emptied list): read the post from
    -- WordPress to have all of it (docs/events.md, "Size policy"). Cleared by the post's next
    -- snapshot (`wpcdc backfill`).
    incomplete    boolean NOT NULL DEFAULT false,
    seq           bigint  NOT NULL,  -- the event this row is from
    PRIMARY KEY (blog_id, post_id)
);

-- Meta rows by meta_id (a key may have several values), without WordPress's bookkeeping keys
-- (the connector leaves those out).
CREATE TABLE IF NOT EXISTS post_meta (
    blog_id    integer NOT NULL,
    meta_id    bigint  NOT NULL,
    post_id    bigint  NOT NULL,
    meta_key   text    NOT NULL,
    meta_value text,
    PRIMARY KEY (blog_id, meta_id)
);
CREATE INDEX IF NOT EXISTS post_meta_post ON post_meta (blog_id, post_id);

-- Which terms a post has (wp_term_relationships).
CREATE TABLE IF NOT EXISTS post_terms (
    blog_id          integer NOT NULL,
    post_id          bigint  NOT NULL,
    term_taxonomy_id bigint  NOT NULL,
    PRIMARY KEY (blog_id, post_id, term_taxonomy_id)
);

-- What a term is called: from post events (terms.added) and term events (renames, deletes), the
-- newer `seq` winning, since the two topics are read side by side.
CREATE TABLE IF NOT EXISTS terms (
    blog_id          integer NOT NULL,
    term_taxonomy_id bigint  NOT NULL,
    term_id          bigint  NOT NULL,
    taxonomy         text    NOT NULL,
    slug             text,
    name             text,
    seq              bigint  NOT NULL,
    PRIMARY KEY (blog_id, term_taxonomy_id)
);

CREATE OR REPLACE VIEW post_terms_named AS
    SELECT pt.blog_id, pt.post_id, pt.term_taxonomy_id, t.taxonomy, t.slug, t.name
    FROM post_terms pt LEFT JOIN terms t USING (blog_id, term_taxonomy_id);

-- The newest seq applied per post. Kept after a delete event (so that nothing older brings the
-- post back) until the post's tombstone, which comes after everything else of that key.
CREATE TABLE IF NOT EXISTS post_versions (
    blog_id integer NOT NULL,
    post_id bigint  NOT NULL,
    seq     bigint  NOT NULL,
    PRIMARY KEY (blog_id, post_id)
);

-- Where to resume: the next offset to read of each partition, written in the same transaction as
-- the rows those records changed. The consumer seeks here at start; Kafka's group offsets are
-- never used.
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Append-only audit: one row per event applied. With exactly-once no (blog_id, post_id, seq)
-- appears twice; the test checks it. Drop it (and its INSERT) in production if you do not want it.
CREATE TABLE IF NOT EXISTS applied (
    blog_id    integer NOT NULL,
    post_id    bigint  NOT NULL,
    seq        bigint  NOT NULL,
    event_id   text    NOT NULL,
    op         text    NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS applied_post ON applied (blog_id, post_id, seq);

-- Events read but not applied because the post already had that seq or a newer one. A single
-- topic read with the offsets above never produces one; a consumer that re-read records would.
CREATE TABLE IF NOT EXISTS skipped (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint  NOT NULL,
    blog_id     integer NOT NULL,
    post_id     bigint  NOT NULL,
    seq         bigint  NOT NULL,
    stored_seq  bigint  NOT NULL
);
