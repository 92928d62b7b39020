/*
 * statement_end.c — the points where a writer may fold its pending rows (see
 * statement_end.h).
 *
 * A compaction recomputes marked slots from the raw events in the latest snapshot, so it
 * must only run when every raw change the transaction made so far has its pending rows:
 * never between the triggers of one statement (MERGE, ON CONFLICT DO UPDATE and writable
 * CTEs fire several, and the rows of all of them are already in the table), never inside
 * a query that is still running (a function called by an INSERT … SELECT may insert too),
 * never in a BEFORE TRUNCATE trigger. The executor and utility hooks below count how
 * deep queries are nested; when the outermost one finishes, all its AFTER triggers have
 * fired and the transaction's changes are all accounted: that is the statement's end.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "compaction.h"
#include "statement_end.h"

static ExecutorRun_hook_type prev_run = NULL;
static ExecutorFinish_hook_type prev_finish = NULL;
static ProcessUtility_hook_type prev_utility = NULL;

/* Queries (executor runs and finishes, utility commands) in progress in this backend. */
static int	depth = 0;

/*
 * The statement during which the library was loaded: the hooks were not on the stack of
 * the queries already running, so depth cannot tell whether one is; fold nothing until it
 * ends.
 */
static LocalTransactionId loaded_lxid = InvalidLocalTransactionId;
static TimestampTz loaded_statement = 0;

static bool
at_statement_end(void)
{
	if (depth > 0 || !IsTransactionState() || IsParallelWorker())
		return false;
	if (loaded_lxid != InvalidLocalTransactionId)
	{
		if (MyProc->lxid == loaded_lxid && GetCurrentStatementStartTimestamp() == loaded_statement)
			return false;
		loaded_lxid = InvalidLocalTransactionId;
	}
	return true;
}

/* Compaction runs queries of its own: their ends must not start another. */
static bool folding = false;

static void
statement_ended(void)
{
	if (folding || !at_statement_end())
		return;
	folding = true;
	PG_TRY();
	{
		compaction_run_due();
	}
	PG_FINALLY();
	{
		folding = false;
	}
	PG_END_TRY();
}

static void
run_hook(QueryDesc *queryDesc, ScanDirection direction, uint64 count, bool execute_once)
{
	depth++;
	PG_TRY();
	{
		if (prev_run)
			prev_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		depth--;
	}
	PG_END_TRY();
}

static void
finish_hook(QueryDesc *queryDesc)
{
	depth++;
	PG_TRY();
	{
		if (prev_finish)
			prev_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		depth--;
	}
	PG_END_TRY();
	statement_ended();
}

/*
 * A DO block or a procedure is not a query of its own: each statement it runs ends like
 * a top-level one (pending work stays bounded in a loop). COMMIT and ROLLBACK end
 * nothing a compaction should follow.
 */
static void
utility_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, DoStmt) || IsA(stmt, CallStmt) || IsA(stmt, TransactionStmt))
	{
		if (prev_utility)
			prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
		return;
	}
	depth++;
	PG_TRY();
	{
		if (prev_utility)
			prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		depth--;
	}
	PG_END_TRY();
	statement_ended();
}

void
statement_end_register(void)
{
	if (IsTransactionState())
	{
		loaded_lxid = MyProc->lxid;
		loaded_statement = GetCurrentStatementStartTimestamp();
	}
	prev_run = ExecutorRun_hook;
	ExecutorRun_hook = run_hook;
	prev_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = finish_hook;
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = utility_hook;
}
