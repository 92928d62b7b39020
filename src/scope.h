/*
 * scope.h — the request context of SPEC §5: tenant, environment and user, read from the
 * settings meter.tenant_id, meter.environment_id and meter.user_id.
 */
#ifndef METER_SCOPE_H
#define METER_SCOPE_H

/* The current tenant; ERROR 55000 with a hint when unset or empty. */
extern const char *scope_tenant(void);

/* The current environment; "" (the default environment) when unset. */
extern const char *scope_environment(void);

/* The current user id, or NULL when unset or empty. */
extern const char *scope_user(void);

extern void scope_define_settings(void);

/*
 * Run code inside another tenant/environment, as a function's SET clause would: the
 * settings are restored by scope_leave, or by transaction abort. The trigger and the
 * maintenance functions use it to act on the rows' own tenant, whatever the session set.
 */
extern int	scope_enter(const char *tenant, const char *environment);
extern void scope_leave(int nest_level);

#endif							/* METER_SCOPE_H */
