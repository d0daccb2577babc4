-- kck warm (cli/warm.cc): the keys $1 of Python primers, queued as refresh
-- requests for the daemon's worker to compute.
SELECT kck.queue_refresh($1::text[])
