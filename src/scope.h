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

#endif							/* METER_SCOPE_H */
