-- User profiles. The CHECKs repeat the server's validation as the last line of defence.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE profiles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner        text NOT NULL CHECK (char_length(owner) BETWEEN 1 AND 200),
    display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    email        text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    bio          text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 2000),
    locale       text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2,3}(-[A-Z][A-Za-z]{1,3})?$'),
    timezone     text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
    preferences  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    version      integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);

-- One live profile per principal and per email (case-insensitive); deleted ones don't block.
CREATE UNIQUE INDEX profiles_live_owner ON profiles (owner) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX profiles_live_email ON profiles (lower(email)) WHERE deleted_at IS NULL;
-- Keyset pagination in creation order.
CREATE INDEX profiles_page ON profiles (created_at, id) WHERE deleted_at IS NULL;
-- Substring search on names and emails.
CREATE INDEX profiles_search ON profiles USING gin ((display_name || ' ' || email) gin_trgm_ops);
