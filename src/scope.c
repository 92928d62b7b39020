/*
 * scope.c — tenant, environment and user settings (SPEC §5).
 *
 * They play the role of FlexPrice's request context: every function of the extension
 * acts inside the current tenant and environment only. They are ordinary string
 * settings, so `SET`, `SET LOCAL` and `set_config()` all work, and row-level security
 * policies read them with current_setting().
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "compat.h"
#include "scope.h"

static char *tenant_setting = NULL;
static char *environment_setting = NULL;
static char *user_setting = NULL;

void
scope_define_settings(void)
{
	DefineCustomStringVariable("meter.tenant_id",
							   "Tenant whose meters, events and usage this session works on.",
							   "Every meter function acts inside this tenant only.",
							   &tenant_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("meter.environment_id",
							   "Environment inside the tenant; empty means the default environment.",
							   NULL,
							   &environment_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("meter.user_id",
							   "User recorded in created_by and updated_by.",
							   NULL,
							   &user_setting, "", PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("meter");
}

const char *
scope_tenant(void)
{
	if (tenant_setting == NULL || tenant_setting[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no tenant is set"),
				 errdetail("Every meter function acts inside one tenant, taken from the setting meter.tenant_id."),
				 errhint("Run SET meter.tenant_id = '<your tenant id>' (or set_config('meter.tenant_id', …, true) for one transaction).")));
	return tenant_setting;
}

const char *
scope_environment(void)
{
	return environment_setting ? environment_setting : "";
}

const char *
scope_user(void)
{
	return (user_setting && user_setting[0] != '\0') ? user_setting : NULL;
}

int
scope_enter(const char *tenant, const char *environment)
{
	int			level = NewGUCNestLevel();

	set_config_option("meter.tenant_id", tenant, PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_SAVE, true, 0, false);
	set_config_option("meter.environment_id", environment, PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
scope_leave(int nest_level)
{
	AtEOXact_GUC(true, nest_level);
}

/*
 * meter.current_tenant() — the tenant of the current scope, or error 55000 when unset.
 * Used as the column default of tenant_id and by the SQL-language functions.
 */
PG_FUNCTION_INFO_V1(meter_current_tenant);
Datum
meter_current_tenant(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(scope_tenant()));
}

/* meter.current_environment() — the environment of the current scope ('' by default). */
PG_FUNCTION_INFO_V1(meter_current_environment);
Datum
meter_current_environment(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(scope_environment()));
}

/* meter.current_user_id() — the user of the current scope, NULL when unset. */
PG_FUNCTION_INFO_V1(meter_current_user_id);
Datum
meter_current_user_id(PG_FUNCTION_ARGS)
{
	const char *user = scope_user();

	if (user == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(user));
}
