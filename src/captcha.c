/*
** captcha.c — server-side CAPTCHA verification (Cloudflare Turnstile,
** hCaptcha) and the gate in front of the sign-up functions.
**
** Placeholder until the CAPTCHA work lands: with captcha.provider = 'none'
** (the default) the gate lets everything through; any other provider fails
** closed.
*/
#include "anonauth_int.h"

int aa_captcha_gate(aa_conn *c, const aa_opts *o, const char *function_name) {
  int rc = aa_config_refresh(c);
  (void)o;
  if (rc != SQLITE_OK) return rc;
  if (aa_config_int(c, AA_CFG_CAPTCHA_PROVIDER) == 0) return SQLITE_OK;
  return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                "%s: CAPTCHA verification is not built into this version", function_name);
}
