/*
 * A prototype, for bench/capture_parts.sh only: kck's capture as a C row
 * trigger, to measure how much of the capture's cost a C function would
 * save against the generated plpgsql one (and against PgQ's C trigger,
 * pgq.logutriga). Not installed by kck; no wake-up test.
 *
 *   CREATE FUNCTION kck_crow() RETURNS trigger AS '.../kck_crow.so', 'kck_capture_row' LANGUAGE C;
 *   CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW
 *     EXECUTE FUNCTION kck_crow('public.t', 'id', 'grp');
 *
 * Arguments: the table's name as the outbox records it, then the columns
 * to capture. Each row becomes one outbox row, (tbl, op, old, new) with
 * old/new a jsonb object of those columns, in the outbox part of the
 * transaction's start time, as the generated function writes it. A column
 * that is missing (renamed, dropped) does not fail the statement: the row
 * is recorded as op 'T' (recompute everything of the table), as the
 * generated function's column check does.
 *
 * kck_capture_stmt is the same as a statement-level trigger, the shape kck
 * uses: it reads the transition tables' tuplestores directly (no query),
 * zips an UPDATE's old and new images by position, and writes one outbox row
 * per row for statements of at most 100 rows. A larger statement gets one
 * row in bulk form, by a query over the transition table (SPI with the
 * trigger's transition tables registered), the distinct values of the
 * captured columns after the first (the primary key), as the generated
 * function writes it.
 *
 *   CREATE TRIGGER ... AFTER UPDATE ON t REFERENCING OLD TABLE AS kck_old
 *     NEW TABLE AS kck_new FOR EACH STATEMENT EXECUTE FUNCTION kck_cstmt('public.t', 'id', 'grp');
 *   (and one AFTER INSERT with the new table, one AFTER DELETE with the old)
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(kck_capture_row);
PG_FUNCTION_INFO_V1(kck_capture_stmt);

static SPIPlanPtr plans[3];

/* The jsonb object of the captured columns of the row in `slot`; NULL when
 * one is missing. */
static Jsonb *
row_image(TupleDesc desc, TupleTableSlot *slot, int nargs, char **args)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 1; i < nargs; i++)
	{
		int			att = SPI_fnumber(desc, args[i]);
		JsonbValue	key, value;
		bool		isnull;
		Datum		d;
		Oid			type;

		if (att <= 0)
			return NULL;
		key.type = jbvString;
		key.val.string.val = args[i];
		key.val.string.len = strlen(args[i]);
		pushJsonbValue(&state, WJB_KEY, &key);
		d = slot_getattr(slot, att, &isnull);
		type = TupleDescAttr(desc, att - 1)->atttypid;
		if (isnull)
			value.type = jbvNull;
		else if (type == INT4OID)
		{
			value.type = jbvNumeric;
			value.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, d));
		}
		else if (type == INT8OID)
		{
			value.type = jbvNumeric;
			value.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, d));
		}
		else
		{
			Oid			out;
			bool		varlena;
			char	   *text;

			getTypeOutputInfo(type, &out, &varlena);
			text = OidOutputFunctionCall(out, d);
			value.type = jbvString;
			value.val.string.val = text;
			value.val.string.len = strlen(text);
		}
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

static Jsonb *
tuple_image(TupleDesc desc, HeapTuple tup, int nargs, char **args)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	Jsonb	   *image;

	ExecStoreHeapTuple(tup, slot, false);
	image = row_image(desc, slot, nargs, args);
	ExecDropSingleTupleTableSlot(slot);
	return image;
}

/* kck.outbox_part(): floor(epoch(now()) / 2) % 3. */
static int
outbox_part(void)
{
	int64		epoch = GetCurrentTransactionStartTimestamp() / USECS_PER_SEC +
		(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	return (int) ((epoch / 2) % 3);
}

static SPIPlanPtr
insert_plan(int part)
{
	if (plans[part] == NULL)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, JSONBOID, JSONBOID};
		char		sql[160];
		SPIPlanPtr	plan;

		snprintf(sql, sizeof(sql),
				 "INSERT INTO kck.changes_%d (tbl, op, old, new) VALUES ($1, $2::char(1), $3, $4)", part);
		plan = SPI_prepare(sql, 4, types);
		if (plan == NULL)
			elog(ERROR, "kck_capture_row: preparing the outbox insert failed");
		SPI_keepplan(plan);
		plans[part] = plan;
	}
	return plans[part];
}

/* One outbox row; SPI is connected. */
static void
write_change(const char *tbl, const char *op, Jsonb *jo, Jsonb *jn)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', jo ? ' ' : 'n', jn ? ' ' : 'n'};

	values[0] = CStringGetTextDatum(tbl);
	values[1] = CStringGetTextDatum(op);
	values[2] = PointerGetDatum(jo);
	values[3] = PointerGetDatum(jn);
	if (SPI_execute_plan(insert_plan(outbox_part()), values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kck capture prototype: the outbox insert failed");
}

/* The trigger data of a call, checked to come from an AFTER trigger of the
 * expected level with the table's name and at least one column. */
static TriggerData *
checked_trigger(FunctionCallInfo fcinfo, bool for_row, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || (TRIGGER_FIRED_FOR_ROW(td->tg_event) != 0) != for_row ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "%s: not called as an AFTER ... FOR EACH %s trigger", name, for_row ? "ROW" : "STATEMENT");
	if (td->tg_trigger->tgnargs < 2)
		elog(ERROR, "%s: needs the table's name and its columns", name);
	return td;
}

/* The outbox's op letter of the trigger's event. */
static const char *
op_of(TriggerData *td)
{
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		return "I";
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "U" : "D";
}

Datum
kck_capture_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = checked_trigger(fcinfo, true, "kck_capture_row");
	TupleDesc	desc = td->tg_relation->rd_att;
	int			nargs = td->tg_trigger->tgnargs;
	char	  **args = td->tg_trigger->tgargs;
	const char *op = op_of(td);
	HeapTuple	oldt = NULL, newt = NULL;
	Jsonb	   *jo = NULL, *jn = NULL;

	if (op[0] == 'I')
		newt = td->tg_trigtuple;
	else if (op[0] == 'U')
	{
		oldt = td->tg_trigtuple;
		newt = td->tg_newtuple;
	}
	else
		oldt = td->tg_trigtuple;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kck_capture_row: SPI_connect failed");
	if (oldt != NULL)
		jo = tuple_image(desc, oldt, nargs, args);
	if (newt != NULL)
		jn = tuple_image(desc, newt, nargs, args);
	if ((oldt != NULL && jo == NULL) || (newt != NULL && jn == NULL))
	{
		op = "T";
		jo = jn = NULL;
	}
	write_change(args[0], op, jo, jn);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* Opens a read pointer of its own on a transition table, at its start. */
static void
open_reader(Tuplestorestate *ts)
{
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
}

/* The bulk form: one row, the distinct values of the captured columns
 * after the first, over transition table `enr`; into `*image`. */
static void
bulk_image(const char *enr, int nargs, char **args, Jsonb **image)
{
	StringInfoData sql;
	bool		isnull;
	Datum		d;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT jsonb_agg(jsonb_build_object(");
	for (int i = 2; i < nargs; i++)
		appendStringInfo(&sql, "%s%s, s.%s", i > 2 ? ", " : "", quote_literal_cstr(args[i]), quote_identifier(args[i]));
	appendStringInfoString(&sql, ")) FROM (SELECT DISTINCT ");
	for (int i = 2; i < nargs; i++)
		appendStringInfo(&sql, "%sx.%s", i > 2 ? ", " : "", quote_identifier(args[i]));
	appendStringInfo(&sql, " FROM %s x) s", quote_identifier(enr));
	if (SPI_execute(sql.data, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kck capture prototype: the bulk form failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*image = isnull ? NULL : DatumGetJsonbP(SPI_datumTransfer(d, false, -1));
}

Datum
kck_capture_stmt(PG_FUNCTION_ARGS)
{
	TriggerData *td = checked_trigger(fcinfo, false, "kck_capture_stmt");
	TupleDesc	desc = td->tg_relation->rd_att;
	int			nargs = td->tg_trigger->tgnargs;
	char	  **args = td->tg_trigger->tgargs;
	const char *op = op_of(td);
	Tuplestorestate *olds = td->tg_oldtable, *news = td->tg_newtable;
	TupleTableSlot *os = NULL, *ns = NULL;
	int64		n;

	n = Max(olds ? tuplestore_tuple_count(olds) : 0, news ? tuplestore_tuple_count(news) : 0);
	if (n == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kck_capture_stmt: SPI_connect failed");
	if (n > 100 || (olds && news && tuplestore_tuple_count(olds) != tuplestore_tuple_count(news)))
	{
		Jsonb	   *jo = NULL, *jn = NULL;

		SPI_register_trigger_data(td);
		if (olds)
			bulk_image(td->tg_trigger->tgoldtable, nargs, args, &jo);
		if (news)
			bulk_image(td->tg_trigger->tgnewtable, nargs, args, &jn);
		write_change(args[0], op, jo, jn);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (olds)
	{
		open_reader(olds);
		os = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	}
	if (news)
	{
		open_reader(news);
		ns = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	}
	for (;;)
	{
		Jsonb	   *jo = NULL, *jn = NULL;

		if (os && !tuplestore_gettupleslot(olds, true, false, os))
			break;
		if (ns && !tuplestore_gettupleslot(news, true, false, ns))
			break;
		if (os)
			jo = row_image(desc, os, nargs, args);
		if (ns)
			jn = row_image(desc, ns, nargs, args);
		if ((os && jo == NULL) || (ns && jn == NULL))
		{
			write_change(args[0], "T", NULL, NULL);
			break;
		}
		write_change(args[0], op, jo, jn);
	}
	if (os)
		ExecDropSingleTupleTableSlot(os);
	if (ns)
		ExecDropSingleTupleTableSlot(ns);
	SPI_finish();
	return PointerGetDatum(NULL);
}
