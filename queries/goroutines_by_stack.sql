-- Goroutines by blocking stack: count in the first and latest goroutine profile, and growth.
WITH bounds AS (
    SELECT capture, MIN(time) AS first_time, MAX(time) AS last_time
    FROM profiles WHERE kind = 'goroutine' GROUP BY capture
),
counts AS (
    SELECT s.capture, s.stack_id,
           SUM(CASE WHEN s.time = b.first_time THEN s.goroutines ELSE 0 END) AS first_count,
           SUM(CASE WHEN s.time = b.last_time THEN s.goroutines ELSE 0 END) AS last_count
    FROM samples s JOIN bounds b ON s.capture = b.capture
    WHERE s.kind = 'goroutine'
    GROUP BY s.capture, s.stack_id
)
SELECT c.capture, i.site, blocked_in(i.frames) AS blocked_in, c.first_count, c.last_count,
       c.last_count - c.first_count AS growth, i.stack_text
FROM counts c JOIN stack_info i ON c.stack_id = i.stack_id
WHERE c.last_count > 0 OR c.first_count > 0
ORDER BY growth DESC, last_count DESC, c.capture, i.site, c.stack_id
LIMIT 50
