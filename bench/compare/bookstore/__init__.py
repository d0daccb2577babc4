"""The bookstore as a plain Django app (no kck), for bench/compare: models on the tables of
examples/bookstore/schema.sql, the products' SQL, the signal handlers of configurations (c)
and (d), and one read path per configuration."""
