-- Go heap in use by call site in the latest heap profile of each capture, largest first.
WITH latest AS (
    SELECT capture, MAX(time) AS time FROM profiles WHERE kind = 'heap' GROUP BY capture
)
SELECT s.capture, i.site, format_bytes(CAST(SUM(s.inuse_bytes) AS DOUBLE)) AS inuse,
       SUM(s.inuse_objects) AS objects, COUNT(DISTINCT s.stack_id) AS stacks
FROM samples s
JOIN latest l ON s.capture = l.capture AND s.time = l.time
JOIN stack_info i ON s.stack_id = i.stack_id
WHERE s.kind = 'heap'
GROUP BY s.capture, i.site
ORDER BY SUM(s.inuse_bytes) DESC, s.capture, i.site
LIMIT 30
