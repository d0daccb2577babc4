-- Changes in the outbox, claimed or not, and the age of the oldest in
-- seconds: logged on connect, and --until-idle exits only at 0.
SELECT count(*), coalesce(round(extract(epoch FROM now() - min(at)))::bigint, 0) FROM kck.changes
