/*
 * kck's capture as a C function: the server module kck_capture.so, which
 * `kck install` uses instead of the generated plpgsql function when
 * PostgreSQL can load it (docs/DESIGN.md, "Capture in C"). It writes the
 * outbox rows the plpgsql function of triggers/capture.cc writes, for every
 * table but kck.cache (whose UPDATEs that function filters by version),
 * and costs a writer less: no executor start-up to read the
 * transition tables, no subtransaction for the column check.
 *
 * One statement-level AFTER trigger per operation calls kck_capture with:
 *   0   the table's name as kck.changes.tbl records it ("public.store_book")
 *   1   the number K of primary-key columns (0: every statement in bulk form)
 *   2   one letter per captured column: 'b' when bulk images hold it, '-' not;
 *       or "*": every image is the whole row (to_jsonb of the row)
 *   3.. the captured columns, the K key columns first
 *
 * The function is not SECURITY DEFINER and sets no search_path: it reads
 * the rows and converts their values (to_jsonb, which may call a cast to
 * json that the owner of a type wrote) as the writing role, in its own
 * search_path, as that role's own statements would; it becomes its owner,
 * the superuser that installed it, only to write the outbox and read the
 * wake-up flag, which the writing role needs no privilege on. So every
 * name in its SQL is schema-qualified (pg_catalog.count, OPERATOR(
 * pg_catalog.<=)): nothing resolves through the writer's search_path; and
 * it compares no values of the writer's types with an operator (bulk
 * images are grouped by binary value, uneven UPDATEs take the bulk form):
 * their equality may be an extension's, or missing.
 *
 * It never makes the application's statement fail for a reason of its own:
 * a captured column that is gone (renamed, dropped) is found in the catalog
 * before anything is read, and the statement is recorded as op 'T' with the
 * reason, as the plpgsql column check does.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"

PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(kck_capture);

/* Statements touching more rows than this are recorded in bulk form
 * (kBulkRows in triggers/capture.h). */
#define BULK_ROWS 100
/* The outbox parts that take turns (sql/005_outbox_parts.sql). */
#define OUTBOX_PARTS 3
/* A bulk statement with more distinct images than this on a side is
 * recorded as op 'T' instead, which recomputes every product of the table:
 * its images would take the writer's backend hundreds of megabytes and
 * reach jsonb's 1 GB limit, which fails the statement (kBulkMaxImages in
 * triggers/capture.h). The setting kck.bulk_max_images changes it. */
#define BULK_MAX_IMAGES 1000000

/* One call: the trigger's table, its arguments, and how to image a column. */
typedef struct Capture
{
	TriggerData *td;
	TupleDesc	desc;
	const char *tbl;
	int			nkeys;
	const char *bulk;			/* 'b' per column bulk images hold */
	bool		whole;			/* images are whole rows */
	FmgrInfo   *row_to_jsonb;	/* to_jsonb for the table's row type */
	int			ncols;
	char	  **cols;
	AttrNumber *atts;			/* each column's number in desc */
	FmgrInfo  **to_jsonb;		/* to_jsonb for its type; NULL: converted here */
	int			part;			/* the outbox part written to */
	int			max_images;		/* of a bulk side (bulk_max_images) */
	bool		wrote;
	Oid			owner;			/* the function's owner, who writes the outbox */
} Capture;

/* The role and security context to restore after acting as the owner. */
typedef struct Identity
{
	Oid			user;
	int			context;
} Identity;

/* Plans kept for the session: one row, and many rows from two arrays. */
static SPIPlanPtr one_row_plans[OUTBOX_PARTS];
static SPIPlanPtr many_rows_plans[OUTBOX_PARTS];

/* kck.outbox_part(): floor(epoch(now()) / 2) % 3. */
static int
outbox_part(void)
{
	int64		epoch = GetCurrentTransactionStartTimestamp() / USECS_PER_SEC +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	return (int) ((epoch / 2) % OUTBOX_PARTS);
}

/* The call's trigger data, checked to come from a statement-level AFTER
 * trigger with arguments of the documented shape. */
static TriggerData *
checked_trigger(FunctionCallInfo fcinfo)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *tg;

	if (!CALLED_AS_TRIGGER(fcinfo) || TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "kck_capture: not called as an AFTER ... FOR EACH STATEMENT trigger");
	tg = td->tg_trigger;
	if (tg->tgnargs < 3 ||
		((int) strlen(tg->tgargs[2]) != tg->tgnargs - 3 && strcmp(tg->tgargs[2], "*") != 0) ||
		atoi(tg->tgargs[1]) < 0 || atoi(tg->tgargs[1]) > tg->tgnargs - 3)
		elog(ERROR, "kck_capture: trigger %s has arguments kck install did not write", tg->tgname);
	return td;
}

/* An FmgrInfo of to_jsonb(anyelement) for arguments of `type`: the one
 * conversion jsonb_build_object applies to each value. */
static FmgrInfo *
to_jsonb_of(Oid type, int32 typmod, Oid collation)
{
	FmgrInfo   *info = palloc0(sizeof(FmgrInfo));
	Const	   *arg = makeNullConst(type, typmod, collation);

	fmgr_info(F_TO_JSONB, info);
	info->fn_expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(arg), InvalidOid, collation,
										  COERCE_EXPLICIT_CALL);
	return info;
}

/* Finds each captured column in the table; the reason when one is gone. */
static char *
resolve_columns(Capture *c)
{
	c->atts = palloc(sizeof(AttrNumber) * c->ncols);
	c->to_jsonb = palloc0(sizeof(FmgrInfo *) * c->ncols);
	for (int i = 0; i < c->ncols; i++)
	{
		int			att = SPI_fnumber(c->desc, c->cols[i]);
		Form_pg_attribute attr;

		if (att <= 0)
			return psprintf("column \"%s\" of relation \"%s\" does not exist", c->cols[i], c->tbl);
		c->atts[i] = (AttrNumber) att;
		attr = TupleDescAttr(c->desc, att - 1);
		if (!c->whole && attr->atttypid != INT4OID && attr->atttypid != INT8OID && attr->atttypid != TEXTOID &&
			attr->atttypid != VARCHAROID)
			c->to_jsonb[i] = to_jsonb_of(attr->atttypid, attr->atttypmod, attr->attcollation);
	}
	if (c->whole)
		c->row_to_jsonb = to_jsonb_of(c->desc->tdtypeid, -1, InvalidOid);
	return NULL;
}

/* Sets *v to the jsonb value of a to_jsonb result. */
static void
value_of_jsonb(Jsonb *jb, JsonbValue *v)
{
	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, v);
		return;
	}
	v->type = jbvBinary;
	v->val.binary.data = &jb->root;
	v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
}

/* Sets *v to value `d` of column i, as to_jsonb converts it. */
static void
jsonb_value_of(Capture *c, int i, Datum d, bool isnull, JsonbValue *v)
{
	Oid			type = TupleDescAttr(c->desc, c->atts[i] - 1)->atttypid;

	if (isnull)
		v->type = jbvNull;
	else if (c->to_jsonb[i] != NULL)
		value_of_jsonb(DatumGetJsonbP(FunctionCall1(c->to_jsonb[i], d)), v);
	else if (type == INT4OID || type == INT8OID)
	{
		v->type = jbvNumeric;
		v->val.numeric = DatumGetNumeric(DirectFunctionCall1(type == INT4OID ? int4_numeric : int8_numeric, d));
	}
	else
	{
		text	   *t = DatumGetTextPP(d);

		v->type = jbvString;
		v->val.string.val = VARDATA_ANY(t);
		v->val.string.len = VARSIZE_ANY_EXHDR(t);
	}
}

/* Pushes the key of column i of an image. */
static void
push_column_key(Capture *c, JsonbParseState **state, int i)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = c->cols[i];
	key.val.string.len = strlen(c->cols[i]);
	pushJsonbValue(state, WJB_KEY, &key);
}

/* The row image of `slot`: a jsonb object of the captured columns, or of
 * the whole row. */
static Datum
row_image(Capture *c, TupleTableSlot *slot)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	if (c->whole)
		return FunctionCall1(c->row_to_jsonb, ExecFetchSlotHeapTupleDatum(slot));
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < c->ncols; i++)
	{
		JsonbValue	value;
		bool		isnull;
		Datum		d = slot_getattr(slot, c->atts[i], &isnull);

		push_column_key(c, &state, i);
		jsonb_value_of(c, i, d, isnull, &value);
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

static SPIPlanPtr
kept_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL)
			elog(ERROR, "kck_capture: preparing \"%s\" failed: %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* The owner of function `fn`. */
static Oid
owner_of(Oid fn)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "kck_capture: function %u is gone", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* Acts as the function's owner until restore(); an error on the way is
 * undone by the transaction's abort, which restores the role. */
static Identity
become_owner(Capture *c)
{
	Identity	saved;

	GetUserIdAndSecContext(&saved.user, &saved.context);
	SetUserIdAndSecContext(c->owner, saved.context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	return saved;
}

static void
restore(Identity saved)
{
	SetUserIdAndSecContext(saved.user, saved.context);
}

/* Prepares (once, into *slot) and runs the outbox insert `sql` as the
 * function's owner: the writer may not even look up schema kck. SPI is
 * connected. */
static void
insert_as_owner(Capture *c, SPIPlanPtr *slot, const char *sql, Oid *types, Datum *values, char *nulls)
{
	Identity	saved = become_owner(c);

	if (SPI_execute_plan(kept_plan(slot, sql, 4, types), values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kck_capture: writing changes of %s to kck.changes_%d failed", c->tbl, c->part);
	restore(saved);
}

/* The columns of an outbox part, in order, as migration 005 made them. */
static const struct
{
	const char *name;
	Oid			type;
}			outbox_columns[] = {
	{"id", INT8OID}, {"tbl", TEXTOID}, {"op", BPCHAROID}, {"old", JSONBOID},
	{"new", JSONBOID}, {"txid", XID8OID}, {"at", TIMESTAMPTZOID},
};
#define OUTBOX_COLUMNS lengthof(outbox_columns)

/* Whether a row of `rel` is exactly a heap tuple of outbox_columns: no
 * index, trigger, rule, check constraint or other column that an INSERT
 * would have to maintain or check. */
static bool
plain_outbox_part(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasindex || rel->trigdesc != NULL ||
		rel->rd_rules != NULL || rel->rd_rel->relrowsecurity || desc->natts != (int) OUTBOX_COLUMNS ||
		(desc->constr != NULL && desc->constr->num_check > 0))
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);

		if (attr->attisdropped || attr->atttypid != outbox_columns[i].type ||
			strcmp(NameStr(attr->attname), outbox_columns[i].name) != 0 || attr->attgenerated)
			return false;
	}
	return true;
}

/* The relation kck.`name`; InvalidOid when it or schema kck is gone. */
static Oid
kck_relid(const char *name)
{
	Oid			kck = get_namespace_oid("kck", true);

	return OidIsValid(kck) ? get_relname_relid(name, kck) : InvalidOid;
}

/* The outbox part, opened and locked as an INSERT locks it (until the
 * transaction ends: a part is truncated only under a lock that waits for
 * it), when its rows can be written as heap tuples; NULL otherwise. */
static Relation
open_plain_part(Capture *c, Oid *seq)
{
	char		name[NAMEDATALEN];
	Oid			part;
	Relation	rel;

	snprintf(name, sizeof(name), "changes_%d", c->part);
	part = kck_relid(name);
	*seq = kck_relid("changes_id_seq");
	if (!OidIsValid(part) || !OidIsValid(*seq))
		return NULL;
	rel = table_open(part, RowExclusiveLock);
	if (plain_outbox_part(rel))
		return rel;
	table_close(rel, NoLock);
	return NULL;
}

/* Writes the n rows (tbl, op, olds[i], news[i]) into `rel` as heap tuples,
 * with the defaults the INSERT would give them. */
static void
insert_heap_tuples(Capture *c, Relation rel, Oid seq, const char *op, Datum *olds, bool *old_nulls,
				   Datum *news, bool *new_nulls, int n)
{
	Datum		values[OUTBOX_COLUMNS];
	bool		isnull[OUTBOX_COLUMNS] = {false};

	values[1] = CStringGetTextDatum(c->tbl);
	values[2] = CStringGetTextDatum(op);	/* a bpchar(1) is the text */
	values[5] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	values[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tuple;

		values[0] = Int64GetDatum(nextval_internal(seq, false));
		isnull[3] = olds == NULL || (old_nulls != NULL && old_nulls[i]);
		values[3] = isnull[3] ? (Datum) 0 : olds[i];
		isnull[4] = news == NULL || (new_nulls != NULL && new_nulls[i]);
		values[4] = isnull[4] ? (Datum) 0 : news[i];
		tuple = heap_form_tuple(RelationGetDescr(rel), values, isnull);
		simple_heap_insert(rel, tuple);
		heap_freetuple(tuple);
	}
}

/* A jsonb[] of n images; `isnull` may be NULL (none is). */
static Datum
image_array(Datum *images, bool *isnull, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(images, isnull, 1, dims, lbs, JSONBOID, -1, false, TYPALIGN_INT));
}

/* Writes the n rows through SPI: one INSERT ... VALUES, or one INSERT ...
 * SELECT FROM unnest of two arrays. */
static void
insert_through_spi(Capture *c, const char *op, Datum *olds, bool *old_nulls, Datum *news, bool *new_nulls, int n)
{
	Datum		values[4] = {CStringGetTextDatum(c->tbl), CStringGetTextDatum(op), 0, 0};
	char		nulls[4] = {' ', ' ', 'n', 'n'};
	char		sql[200];

	if (n == 1)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, JSONBOID, JSONBOID};

		if (olds != NULL && (old_nulls == NULL || !old_nulls[0]))
			values[2] = olds[0], nulls[2] = ' ';
		if (news != NULL && (new_nulls == NULL || !new_nulls[0]))
			values[3] = news[0], nulls[3] = ' ';
		snprintf(sql, sizeof(sql), "INSERT INTO kck.changes_%d (tbl, op, old, new) VALUES ($1, $2::char(1), $3, $4)",
				 c->part);
		insert_as_owner(c, &one_row_plans[c->part], sql, types, values, nulls);
		return;
	}
	if (olds != NULL)
		values[2] = image_array(olds, old_nulls, n), nulls[2] = ' ';
	if (news != NULL)
		values[3] = image_array(news, new_nulls, n), nulls[3] = ' ';
	snprintf(sql, sizeof(sql),
			 "INSERT INTO kck.changes_%d (tbl, op, old, new) SELECT $1, $2::char(1), u.o, u.n "
			 "FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u (o, n)", c->part);
	insert_as_owner(c, &many_rows_plans[c->part],
					sql, (Oid[]) {TEXTOID, TEXTOID, JSONBARRAYOID, JSONBARRAYOID}, values, nulls);
}

/* Writes n outbox rows, the i-th holding olds[i] and news[i] (either NULL:
 * that side is null in every row; old_nulls and new_nulls, when given,
 * mark single null images). As heap tuples into a plain part, which costs
 * a writer a fraction of an INSERT's executor; else through SPI, which is
 * connected. */
static void
write_changes(Capture *c, const char *op, Datum *olds, bool *old_nulls, Datum *news, bool *new_nulls, int n)
{
	Oid			seq;
	Relation	rel = open_plain_part(c, &seq);

	if (rel != NULL)
	{
		insert_heap_tuples(c, rel, seq, op, olds, old_nulls, news, new_nulls, n);
		table_close(rel, NoLock);
	}
	else
		insert_through_spi(c, op, olds, old_nulls, news, new_nulls, n);
	c->wrote = true;
}

/* Writes one outbox row (tbl, op, old, new). */
static void
write_change(Capture *c, const char *op, Datum old, bool old_null, Datum new, bool new_null)
{
	write_changes(c, op, old_null ? NULL : &old, NULL, new_null ? NULL : &new, NULL, 1);
}

/* Rewinds transition table `ts` through a read pointer of its own, as a
 * scan of the transition table takes. */
static void
rewind_transition_table(Tuplestorestate *ts)
{
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
}

/* The images of the rows of transition table `ts`, in its order. */
static Datum *
images_of(Capture *c, Tuplestorestate *ts, int n)
{
	Datum	   *images = palloc(sizeof(Datum) * n);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(c->desc, &TTSOpsMinimalTuple);

	rewind_transition_table(ts);
	for (int i = 0; i < n; i++)
	{
		if (!tuplestore_gettupleslot(ts, true, false, slot))
			elog(ERROR, "kck_capture: a transition table of %s holds fewer rows than it counts", c->tbl);
		images[i] = row_image(c, slot);
	}
	ExecDropSingleTupleTableSlot(slot);
	return images;
}

/* kck.bulk_max_images when it is a number from 1 to 100000000, else
 * BULK_MAX_IMAGES (as the plpgsql capture reads it: triggers/capture.cc). */
static int
bulk_max_images(void)
{
	const char *setting = GetConfigOption("kck.bulk_max_images", true, false);
	char	   *end;
	long		n;

	if (setting == NULL || *setting == '\0')
		return BULK_MAX_IMAGES;
	errno = 0;
	n = strtol(setting, &end, 10);
	return errno != 0 || *end != '\0' || n < 1 || n > 100000000 ? BULK_MAX_IMAGES : (int) n;
}

/* The whole-row bulk image of transition table `enr`: the distinct rows,
 * each as to_jsonb makes it (jsonb has an equality for every row type);
 * (Datum) 0 when there are more than c->max_images. */
static Datum
whole_rows_image(Capture *c, const char *enr)
{
	int			max = c->max_images;
	char	   *sql = psprintf("SELECT CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.<=) %d "
							   "THEN pg_catalog.jsonb_agg(kck_r) END FROM (SELECT DISTINCT pg_catalog.to_jsonb(kck_x) "
							   "AS kck_r FROM %s kck_x LIMIT %d) kck_s", max, quote_identifier(enr), max + 1);
	bool		isnull;
	Datum		d;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kck_capture: reading the bulk image of %s failed", c->tbl);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
}

/*
 * The distinct values of the columns bulk images hold, grouped by their
 * binary images (datum_image_eq) in an open-addressing hash table. That
 * makes at least the groups SQL's DISTINCT makes (two values it finds equal
 * but stored differently, 1.0 and 1.00, stay two images, which map to the
 * same products), for every type: also for one without an equality (json,
 * point), where a DISTINCT fails the writer's statement. And it costs the
 * writer no query over the transition table.
 */
typedef struct Groups
{
	int			ncols;			/* the columns bulk images hold */
	int		   *cols;			/* their indexes in Capture.cols */
	int			n;				/* groups */
	int			room;			/* groups the arrays below hold */
	uint32	   *hashes;
	Datum	   *values;			/* room x ncols, copied */
	bool	   *nulls;
	int			mask;			/* slots - 1; slots = 2 x room */
	int		   *slots;			/* NO_GROUP or a group */
	bool		over;			/* more than Capture.max_images */
} Groups;

#define NO_GROUP (-1)

static Groups *
groups_of_bulk_columns(Capture *c)
{
	Groups	   *g = palloc0(sizeof(Groups));

	g->cols = palloc(sizeof(int) * c->ncols);
	for (int i = 0; i < c->ncols; i++)
		if (c->bulk[i] == 'b')
			g->cols[g->ncols++] = i;
	return g;
}

static Form_pg_attribute
attr_of(Capture *c, int i)
{
	return TupleDescAttr(c->desc, c->atts[i] - 1);
}

static uint32
values_hash(Capture *c, Groups *g, const Datum *v, const bool *nulls)
{
	uint32		hash = 0;

	for (int k = 0; k < g->ncols; k++)
	{
		Form_pg_attribute attr = attr_of(c, g->cols[k]);

		hash = hash_combine(hash, nulls[k] ? 0 : datum_image_hash(v[k], attr->attbyval, attr->attlen));
	}
	return hash;
}

static bool
group_holds(Capture *c, Groups *g, int group, const Datum *v, const bool *nulls)
{
	const Datum *gv = g->values + (size_t) group * g->ncols;
	const bool *gn = g->nulls + (size_t) group * g->ncols;

	for (int k = 0; k < g->ncols; k++)
	{
		Form_pg_attribute attr = attr_of(c, g->cols[k]);

		if (nulls[k] != gn[k] || (!nulls[k] && !datum_image_eq(v[k], gv[k], attr->attbyval, attr->attlen)))
			return false;
	}
	return true;
}

/* The slot of the group holding the values, or the free slot for it. */
static int
slot_for(Capture *c, Groups *g, uint32 hash, const Datum *v, const bool *nulls)
{
	int			s = hash & g->mask;

	while (g->slots[s] != NO_GROUP &&
		   !(g->hashes[g->slots[s]] == hash && group_holds(c, g, g->slots[s], v, nulls)))
		s = (s + 1) & g->mask;
	return s;
}

/* Room for one more group, the slots at most half full. */
static void
make_room(Groups *g)
{
	size_t		nslots;

	if (g->n < g->room)
		return;
	g->room = g->room ? g->room * 2 : 64;
	nslots = (size_t) g->room * 2;
	if (g->hashes == NULL)
	{
		g->hashes = palloc(sizeof(uint32) * g->room);
		g->values = palloc(sizeof(Datum) * g->room * g->ncols);
		g->nulls = palloc(sizeof(bool) * g->room * g->ncols);
	}
	else
	{
		g->hashes = repalloc_huge(g->hashes, sizeof(uint32) * g->room);
		g->values = repalloc_huge(g->values, sizeof(Datum) * g->room * g->ncols);
		g->nulls = repalloc_huge(g->nulls, sizeof(bool) * g->room * g->ncols);
		pfree(g->slots);
	}
	g->slots = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * nslots);
	memset(g->slots, 0xff, sizeof(int) * nslots);	/* NO_GROUP */
	g->mask = (int) nslots - 1;
	for (int group = 0; group < g->n; group++)
	{
		int			s = g->hashes[group] & g->mask;

		while (g->slots[s] != NO_GROUP)
			s = (s + 1) & g->mask;
		g->slots[s] = group;
	}
}

/* Adds the values of one row unless a group holds them. */
static void
group_values(Capture *c, Groups *g, const Datum *v, const bool *nulls)
{
	uint32		hash = values_hash(c, g, v, nulls);
	int			s;
	Datum	   *gv;
	bool	   *gn;

	make_room(g);
	s = slot_for(c, g, hash, v, nulls);
	if (g->slots[s] != NO_GROUP)
		return;
	if (g->n == c->max_images)
	{
		g->over = true;
		return;
	}
	gv = g->values + (size_t) g->n * g->ncols;
	gn = g->nulls + (size_t) g->n * g->ncols;
	for (int k = 0; k < g->ncols; k++)
	{
		Form_pg_attribute attr = attr_of(c, g->cols[k]);

		gn[k] = nulls[k];
		gv[k] = nulls[k] ? (Datum) 0 : datumCopy(v[k], attr->attbyval, attr->attlen);
	}
	g->hashes[g->n] = hash;
	g->slots[s] = g->n++;
}

/* Groups the rows of transition table `ts`. */
static void
group_rows(Capture *c, Groups *g, Tuplestorestate *ts)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(c->desc, &TTSOpsMinimalTuple);
	Datum	   *v = palloc(sizeof(Datum) * g->ncols);
	bool	   *nulls = palloc(sizeof(bool) * g->ncols);

	rewind_transition_table(ts);
	while (!g->over && tuplestore_gettupleslot(ts, true, false, slot))
	{
		for (int k = 0; k < g->ncols; k++)
			v[k] = slot_getattr(slot, c->atts[g->cols[k]], &nulls[k]);
		group_values(c, g, v, nulls);
	}
	ExecDropSingleTupleTableSlot(slot);
}

/* The groups as an array of images, in the order the rows came. */
static Datum
groups_image(Capture *c, Groups *g)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int group = 0; group < g->n; group++)
	{
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		for (int k = 0; k < g->ncols; k++)
		{
			size_t		at = (size_t) group * g->ncols + k;
			JsonbValue	value;

			push_column_key(c, &state, g->cols[k]);
			jsonb_value_of(c, g->cols[k], g->values[at], g->nulls[at], &value);
			pushJsonbValue(&state, WJB_VALUE, &value);
		}
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL)));
}

/* The bulk image of transition table `ts` (`enr` by name), an array: the
 * distinct whole rows, or the distinct images of the columns bulk images
 * hold ([{}] when they hold none); (Datum) 0 when there are more than
 * c->max_images. */
static Datum
bulk_image(Capture *c, Tuplestorestate *ts, const char *enr)
{
	Groups	   *g;

	if (c->whole)
		return whole_rows_image(c, enr);
	g = groups_of_bulk_columns(c);
	if (g->ncols == 0)
		return DirectFunctionCall1(jsonb_in, CStringGetDatum("[{}]"));
	group_rows(c, g, ts);
	return g->over ? (Datum) 0 : groups_image(c, g);
}

/* {key: text}, the new image of a change that stands for a statement. */
static Datum
object_of(const char *key, const char *text)
{
	JsonbParseState *state = NULL;
	JsonbValue	k = {.type = jbvString}, v = {.type = jbvString};

	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v.val.string.val = (char *) text;
	v.val.string.len = strlen(text);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&state, WJB_KEY, &k);
	pushJsonbValue(&state, WJB_VALUE, &v);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/* A statement in bulk form: one change holding the bulk images, or, when
 * a side holds more than bulk_max_images(), op 'T' (every product of the
 * table recomputed). */
static void
capture_bulk(Capture *c, const char *op)
{
	TriggerData *td = c->td;
	bool		has_old, has_new;
	Datum		old, new;

	c->max_images = bulk_max_images();
	has_old = td->tg_oldtable != NULL;
	has_new = td->tg_newtable != NULL;
	old = has_old ? bulk_image(c, td->tg_oldtable, td->tg_trigger->tgoldtable) : 0;
	new = has_new && (!has_old || old != 0) ?
		bulk_image(c, td->tg_newtable, td->tg_trigger->tgnewtable) : 0;

	if ((has_old && old == 0) || (has_new && new == 0))
		write_change(c, "T", 0, true,
					 object_of("bulk", psprintf("more than %d distinct images: every product of the table",
												c->max_images)), false);
	else
		write_change(c, op, old, !has_old, new, !has_new);
}

/* At most BULK_ROWS rows: one change per row, an UPDATE's sides zipped by
 * position (PostgreSQL appends each row's old and new images together). */
static void
capture_rows(Capture *c, const char *op, int n)
{
	Tuplestorestate *olds = c->td->tg_oldtable, *news = c->td->tg_newtable;
	Datum	   *old_images = olds ? images_of(c, olds, n) : NULL;
	Datum	   *new_images = news ? images_of(c, news, n) : NULL;

	write_changes(c, op, old_images, NULL, new_images, NULL, n);
}

/* The statement's changes; SPI is connected. */
static void
capture_statement(Capture *c)
{
	Tuplestorestate *olds = c->td->tg_oldtable, *news = c->td->tg_newtable;
	int64		nold = olds ? tuplestore_tuple_count(olds) : 0;
	int64		nnew = news ? tuplestore_tuple_count(news) : 0;
	int64		n = Max(nold, nnew);
	const char *op = TRIGGER_FIRED_BY_INSERT(c->td->tg_event) ? "I" :
		TRIGGER_FIRED_BY_UPDATE(c->td->tg_event) ? "U" : "D";

	if (n == 0)
		return;
	/*
	 * Uneven transition tables (a row moved to a partition whose BEFORE
	 * INSERT trigger skipped it has an old image only) cannot be zipped by
	 * position; pairing them by key would need the key type's equality,
	 * which may fail the statement (an extension's type), so they take the
	 * bulk form, as the plpgsql function does.
	 */
	if (c->nkeys == 0 || n > BULK_ROWS || (olds && news && nold != nnew))
	{
		/* Queries over the transition tables, by their names. */
		if (SPI_register_trigger_data(c->td) != SPI_OK_TD_REGISTER)
			elog(ERROR, "kck_capture: registering the transition tables of %s failed", c->tbl);
		capture_bulk(c, op);
	}
	else
		capture_rows(c, op, (int) n);
}

/* Wakes an idle daemon: notifies only while the flag kck.daemon_waiting
 * is 1 (kck.must_notify(), sql/006_wake_flag.sql). */
static void
wake_daemon(Capture *c)
{
	Oid			flag = kck_relid("daemon_waiting");
	LOCAL_FCINFO(call, 1);
	Datum		value;
	Identity	saved;

	if (!OidIsValid(flag))
		return;
	InitFunctionCallInfoData(*call, NULL, 1, InvalidOid, NULL, NULL);
	call->args[0].value = ObjectIdGetDatum(flag);
	call->args[0].isnull = false;
	saved = become_owner(c);
	value = pg_sequence_last_value(call);
	restore(saved);
	if (!call->isnull && DatumGetInt64(value) == 1)
		Async_Notify("kck", "");
}

Datum
kck_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = checked_trigger(fcinfo);
	Trigger    *tg = td->tg_trigger;
	Capture		c = {0};
	char	   *degraded = NULL;

	c.td = td;
	c.desc = td->tg_relation->rd_att;
	c.tbl = tg->tgargs[0];
	c.nkeys = atoi(tg->tgargs[1]);
	c.bulk = tg->tgargs[2];
	c.whole = strcmp(c.bulk, "*") == 0;
	c.ncols = tg->tgnargs - 3;
	c.cols = tg->tgargs + 3;
	c.part = outbox_part();
	c.owner = owner_of(fcinfo->flinfo->fn_oid);
	if (!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		degraded = resolve_columns(&c);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kck_capture: SPI_connect failed");
	if (degraded != NULL)
		/* Recompute every product of the table: what cannot be mapped is
		 * never left stale. */
		write_change(&c, "T", 0, true, object_of("error", degraded), false);
	else if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		write_change(&c, "T", 0, true, 0, true);
	else
		capture_statement(&c);
	if (c.wrote)
		wake_daemon(&c);
	SPI_finish();
	return PointerGetDatum(NULL);
}
