-- Search documents read from files are named by their ingest root, never by a server path.
--
-- `root` is the name of the ingest root a document was read from (NULL: its content came from the
-- caller, whose `source` is kept as given); such a document's `source` is `<root>/<path below root>`.
-- Before this migration a file's `source` was the server's absolute path and its id was hashed from
-- it. Those rows are recognised by exactly that (an absolute source whose id is its default id): the
-- path moves to `legacy_path`, which no tool returns, and `source` keeps only the file name. The next
-- ingest of the same file (matched by `legacy_path`) replaces the old row in the same transaction.
ALTER TABLE search_documents
    ADD COLUMN root text CHECK (root IS NULL OR char_length(root) BETWEEN 1 AND 255),
    ADD COLUMN legacy_path text;

UPDATE search_documents
   SET legacy_path = source, source = substring(source FROM '[^/]*$')
 WHERE source LIKE '/%'
   AND id = 'doc-' || left(encode(sha256(convert_to(source, 'UTF8')), 'hex'), 24);

CREATE INDEX search_documents_legacy_path ON search_documents (legacy_path) WHERE legacy_path IS NOT NULL;
