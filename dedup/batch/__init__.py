"""The engine-neutral steps of one batch, each a function (or a small accumulator) over named values:

    admit (rows → RowAdmission; texts → Admission)            identity rules: first row wins, new/replaced/unchanged
    stage (Admission → Sketched → documents and bucket tables)  sketch, band, the tables an engine writes
    plan  (staged bucket files → LinkPlan → candidate pairs)    which bucket rows meet which files
    score (candidates → pairs tables)                         verification, a bounded group of documents at a time
    recluster ((documents, pairs, previous clusters) → Reclustering: clusters, [ClusterEvent], next cluster id)
    commit (rejections, counts → the batch's last tables and the atomic commit)

None of them starts a thread or knows where it runs: `dedup.engines.local` schedules them on one machine.
"""
