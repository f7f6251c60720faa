-- Scrape attempts per endpoint: successes, failures, retries and latency.
SELECT capture, endpoint,
       SUM(CASE WHEN ok THEN 1 ELSE 0 END) AS ok,
       SUM(CASE WHEN ok THEN 0 ELSE 1 END) AS failed,
       SUM(CASE WHEN attempt > 1 THEN 1 ELSE 0 END) AS retries,
       round(approx_percentile_cont(duration_ms, 0.5), 1) AS p50_ms,
       round(MAX(duration_ms), 1) AS max_ms
FROM scrapes
GROUP BY capture, endpoint
ORDER BY capture, endpoint
