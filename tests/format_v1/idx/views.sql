-- dedup index views: duckdb -init views.sql (generated at each commit; do not edit)
CREATE OR REPLACE VIEW documents AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/documents/00000000-57e6a5a3efa2.parquet', '/work/main/tests/format_v1/idx/tables/documents/00000001-c39c1a1481dd.parquet']);
CREATE OR REPLACE VIEW signatures AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/signatures/00000000-7c71ad0235e4.parquet', '/work/main/tests/format_v1/idx/tables/signatures/00000001-f507e327b54b.parquet']);
CREATE OR REPLACE VIEW buckets AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/buckets/00000000-7bb15a871363.parquet', '/work/main/tests/format_v1/idx/tables/buckets/00000001-02cc48f6e34f.parquet']);
CREATE OR REPLACE VIEW pairs AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/pairs/00000000-51dd1b25449d.parquet']);
CREATE OR REPLACE VIEW clusters AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/clusters/00000001-d84a0fcae706.parquet']);
CREATE OR REPLACE VIEW cluster_events AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/cluster_events/00000000-4da824c92cb0.parquet']);
CREATE OR REPLACE VIEW rejected AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/rejected/00000000-6a579a16e848.parquet']);
CREATE OR REPLACE VIEW batches AS SELECT * FROM read_parquet(['/work/main/tests/format_v1/idx/tables/batches/00000000-e06c17280cb0.parquet', '/work/main/tests/format_v1/idx/tables/batches/00000001-8679e4ecd9ab.parquet']);
CREATE OR REPLACE VIEW cluster_summary AS
SELECT c.cluster_id, any_value(c.size) AS size, any_value(c.representative) AS representative,
       min(d.published_at) AS first_published, max(d.published_at) AS last_published,
       count(DISTINCT d.source) AS sources, arg_min(d.title, d.doc_id) AS title
FROM clusters c JOIN documents d USING (doc_id)
WHERE c.size >= 2 GROUP BY c.cluster_id;
CREATE OR REPLACE VIEW copies AS
SELECT c.cluster_id, c.size, d.doc_id, d.title, d.source, d.url, d.published_at,
       d.doc_id = c.representative AS is_representative
FROM clusters c JOIN documents d USING (doc_id);
