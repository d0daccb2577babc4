# kck keeps its tables in the `kck` schema, created by `kck install` (see sql/), not by
# Django migrations. This module exists so that Django sends post_migrate to this app
# (it skips apps without a models module), which runs kck_sync after `migrate`.
