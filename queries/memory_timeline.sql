-- RSS vs Go heap vs goroutine stacks over time, with the run (restart) each row belongs to.
SELECT
    time,
    capture,
    run_id,
    format_bytes(CAST(rss_bytes AS DOUBLE)) AS rss,
    format_bytes(CAST(go_heap_inuse_bytes AS DOUBLE)) AS heap_inuse,
    format_bytes(CAST(go_stack_inuse_bytes AS DOUBLE)) AS stack_inuse,
    format_bytes(CAST(rss_bytes - COALESCE(go_heap_inuse_bytes, 0) - COALESCE(go_stack_inuse_bytes, 0) AS DOUBLE)) AS rss_not_go_heap_or_stacks,
    go_num_gc AS gc_cycles
FROM process
ORDER BY capture, time
