-- Top Go heap growth by call site: Theil-Sen slope (bytes/hour), Mann-Kendall p-value, peak.
WITH per_profile AS (
    SELECT s.capture, s.run_id, s.profile_id, s.time, i.site, SUM(s.inuse_bytes) AS bytes
    FROM samples s
    JOIN stack_info i ON s.stack_id = i.stack_id
    WHERE s.kind = 'heap'
    GROUP BY s.capture, s.run_id, s.profile_id, s.time, i.site
)
SELECT
    site,
    format_bytes(theil_sen(to_unixtime(time) / 3600.0, CAST(bytes AS DOUBLE))) || '/h' AS growth,
    round(mann_kendall_p(to_unixtime(time) / 3600.0, CAST(bytes AS DOUBLE)), 6) AS trend_p,
    format_bytes(CAST(MAX(bytes) AS DOUBLE)) AS peak,
    COUNT(DISTINCT run_id) AS runs,
    COUNT(*) AS points
FROM per_profile
GROUP BY site
ORDER BY theil_sen(to_unixtime(time) / 3600.0, CAST(bytes AS DOUBLE)) DESC NULLS LAST, site
LIMIT 20
