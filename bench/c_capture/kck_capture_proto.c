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
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(kck_capture_row);

static SPIPlanPtr plans[3];

/* The jsonb object of `tup`'s captured columns; NULL when one is missing. */
static Jsonb *
row_image(TupleDesc desc, HeapTuple tup, int nargs, char **args)
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
		d = heap_getattr(tup, att, desc, &isnull);
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
			char	   *s = SPI_getvalue(tup, desc, att);

			value.type = jbvString;
			value.val.string.val = s;
			value.val.string.len = strlen(s);
		}
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
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

Datum
kck_capture_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	oldt = NULL, newt = NULL;
	Jsonb	   *jo = NULL, *jn = NULL;
	const char *op;
	int			nargs;
	char	  **args;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', 'n', 'n'};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "kck_capture_row: not called as an AFTER ... FOR EACH ROW trigger");
	nargs = td->tg_trigger->tgnargs;
	args = td->tg_trigger->tgargs;
	if (nargs < 2)
		elog(ERROR, "kck_capture_row: needs the table's name and its columns");
	desc = td->tg_relation->rd_att;
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		op = "I";
		newt = td->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		op = "U";
		oldt = td->tg_trigtuple;
		newt = td->tg_newtuple;
	}
	else
	{
		op = "D";
		oldt = td->tg_trigtuple;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kck_capture_row: SPI_connect failed");
	if (oldt != NULL)
		jo = row_image(desc, oldt, nargs, args);
	if (newt != NULL)
		jn = row_image(desc, newt, nargs, args);
	if ((oldt != NULL && jo == NULL) || (newt != NULL && jn == NULL))
	{
		op = "T";
		jo = jn = NULL;
	}
	values[0] = CStringGetTextDatum(args[0]);
	values[1] = CStringGetTextDatum(op);
	values[2] = PointerGetDatum(jo);
	values[3] = PointerGetDatum(jn);
	if (jo != NULL)
		nulls[2] = ' ';
	if (jn != NULL)
		nulls[3] = ' ';
	if (SPI_execute_plan(insert_plan(outbox_part()), values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kck_capture_row: the outbox insert failed");
	SPI_finish();
	return PointerGetDatum(NULL);
}
