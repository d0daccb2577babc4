-- What kck.primers.client_compute holds, by primer name.
SELECT name, client_compute FROM kck.primers
