-- Scrape failures, gaps longer than twice the usual interval, and target restarts (new runs).
WITH intervals AS (
    SELECT capture, kind, time,
           to_unixtime(time) - to_unixtime(LAG(time) OVER (PARTITION BY capture, kind, run_id ORDER BY time)) AS gap_s
    FROM profiles
),
usual AS (
    SELECT capture, kind, approx_median(gap_s) AS median_s FROM intervals GROUP BY capture, kind
)
SELECT time, capture, 'scrape failed' AS event, endpoint || ': ' || COALESCE(error, 'unknown error') AS detail
FROM scrapes WHERE NOT ok
UNION ALL
SELECT i.time, i.capture, 'gap' AS event,
       'no ' || i.kind || ' profile for ' || CAST(i.gap_s AS VARCHAR) || ' s (usual ' || CAST(u.median_s AS VARCHAR) || ' s)' AS detail
FROM intervals i JOIN usual u ON i.capture = u.capture AND i.kind = u.kind
WHERE i.gap_s > 2 * u.median_s
UNION ALL
SELECT MIN(time) AS time, capture, 'run started' AS event, run_id AS detail
FROM profiles GROUP BY capture, run_id
ORDER BY time, capture, event, detail
