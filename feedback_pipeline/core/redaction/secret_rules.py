"""Token families that announce themselves: a vendor prefix (or a fixed framing) and a body of
a known alphabet and length.

The checklist is the public secret scanners' rule lists (gitleaks' rules, detect-secrets'
plugins); the expressions are this project's own. Each family is data: `redaction` turns it into
a detector (Hyperscan locator plus precise pattern) and into a residue rule, so the redactor and
the blocking residue check agree on what a token of the family looks like.

A family's `check` guards the body against words that happen to share the prefix
(`pnu_install`, `key-value-store`): "mixed" wants upper, lower and a digit; "alnum" wants a
letter and a digit; "random" wants "mixed" and a value that does not read as a CamelCase name;
"" takes the shape as it is (fixed-length hex or base32 bodies).

`VENDOR_KEYS` are gitleaks' keyword rules (and detect-secrets' Cloudant plugin): a vendor's
name in the key, an assignment, and a value of exactly the alphabet and length that vendor's
rule states (`asana_client_id: <16 digits>`, `DISCORD_CLIENT_ID=<18 digits>`,
`"sendbird_app_id": "<uuid>"`). Values with a vendor prefix of their own are token families
above and are not repeated there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenFamily:
    """One family: `pattern` is the whole token with its own boundaries (when `value_only`,
    its one group is the value and the rest is context, as in `SSWS <token>`); `prefix` the
    part `check` does not judge; `locator` a Hyperscan expression that matches where the
    pattern starts, or inside the run of `rewind` characters (and letters and digits) the
    pattern starts with; `trigger` a literal every match holds."""

    name: str
    kind: str
    pattern: str
    prefix: str
    locator: bytes
    trigger: str
    check: str = "alnum"
    rewind: str = ""
    value_only: bool = False
    version: str = "1"


_L = r"(?<![\w-])"  # not inside a longer word
_R = r"(?![\w-])"
_R64 = r"(?![\w+/=-])"  # base64 bodies may end in padding
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _f(name: str, kind: str, prefix: str, body: str, *, check: str = "alnum",
       locator: bytes | None = None, trigger: str | None = None, right: str = _R,
       rewind: str = "", value_only: bool = False, left: str = _L,
       version: str = "1") -> TokenFamily:
    literal = prefix.replace("\\", "")
    pattern = f"{left}{prefix}({body}){right}" if value_only else f"{left}{prefix}{body}{right}"
    return TokenFamily(name, kind, pattern, "" if value_only else prefix,
                       locator if locator is not None else prefix.encode(),
                       trigger if trigger is not None else literal, check, rewind, value_only,
                       version)


TOKEN_FAMILIES: tuple[TokenFamily, ...] = (
    # source hosting, package registries, CI
    _f("bitbucket_app_password", "BITBUCKET_TOKEN", "ATBB", r"[A-Za-z0-9_=.-]{28,}",
       check="mixed"),
    _f("gitea_token", "GITEA_TOKEN", "gta_", r"[A-Za-z0-9]{40}"),
    _f("rubygems_key", "RUBYGEMS_KEY", "rubygems_", r"[0-9a-f]{48}"),
    _f("clojars_token", "CLOJARS_TOKEN", "CLOJARS_", r"[a-z0-9]{60}"),
    _f("nuget_key", "NUGET_KEY", "oy2", r"[a-z0-9]{43}"),
    _f("docker_hub_token", "DOCKER_HUB_TOKEN", r"dckr_(?:pat|oat)_", r"[A-Za-z0-9_-]{27,}",
       locator=rb"dckr_(?:pat|oat)_", trigger="dckr_"),
    _f("artifactory_key", "ARTIFACTORY_KEY", "AKCp", r"[A-Za-z0-9]{60,80}"),
    _f("artifactory_key_short", "ARTIFACTORY_KEY", "AKC", r"[A-Za-z0-9]{10,59}", check="mixed"),
    # detect-secrets' Artifactory password: `AP`, a hex digit, eight or more letters and digits.
    # Names share the shape (`APCategoryList`, `APEntryV2`), so the value must not read as one
    # (check "random"); not inside base64 either.
    _f("artifactory_password", "ARTIFACTORY_KEY", "", r"AP[\dA-F][A-Za-z0-9]{8,}",
       check="random", locator=rb"AP[\dA-F][A-Za-z0-9]{8}", trigger="AP",
       left=r"(?<![\w+/-])", right=_R64),
    _f("artifactory_reference", "ARTIFACTORY_KEY", "cmVmdGtuOjAxOj", r"[A-Za-z0-9]{40,}",
       check=""),
    _f("artifactory_reference_any", "ARTIFACTORY_KEY", "cmVmd", r"[A-Za-z0-9]{59}"),
    _f("buildkite_token", "BUILDKITE_TOKEN", "bkua_", r"[a-f0-9]{40}"),
    _f("circleci_token", "CIRCLECI_TOKEN", r"CCIP(?:AT|RJ)_", r"[A-Za-z0-9]{22}_[a-f0-9]{40}",
       locator=rb"CCIP(?:AT|RJ)_", trigger="CCIP"),
    _f("sourcegraph_token", "SOURCEGRAPH_TOKEN", "sgp_", r"(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}"),
    _f("sonar_token", "SONAR_TOKEN", r"sq[upa]_", r"[a-f0-9]{40}", locator=rb"sq[upa]_",
       trigger="sq"),
    _f("octopus_key", "OCTOPUS_KEY", "API-", r"[A-Z0-9]{26,32}", check="alnum"),
    _f("prefect_key", "PREFECT_KEY", "pnu_", r"[A-Za-z0-9]{36}", check="mixed"),
    _f("readme_key", "README_KEY", "rdme_", r"[a-z0-9]{70}"),
    _f("infracost_key", "INFRACOST_KEY", "ico-", r"[A-Za-z0-9]{32}", check="mixed"),
    _f("harness_token", "HARNESS_TOKEN", r"(?:pat|sat)\.", r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}"
       r"\.[A-Za-z0-9]{20}", locator=rb"(?:pat|sat)\.[A-Za-z0-9_-]{22}\.", trigger="at."),
    _f("scalingo_token", "SCALINGO_TOKEN", "tk-us-", r"[A-Za-z0-9_-]{48}"),
    _f("fly_token", "FLY_TOKEN", r"fo1_", r"[A-Za-z0-9_-]{43}"),
    _f("fly_macaroon", "FLY_TOKEN", r"fm[12][ar]?_", r"[A-Za-z0-9+/]{100,}={0,3}",
       locator=rb"fm[12][ar]?_", trigger="fm", right=_R64),
    _f("netlify_token", "NETLIFY_TOKEN", r"nf[pc]_", r"[A-Za-z0-9]{36,40}",
       locator=rb"nf[pc]_", trigger="nf"),
    _f("render_key", "RENDER_KEY", "rnd_", r"[A-Za-z0-9]{32}", check="mixed"),
    _f("vercel_token", "VERCEL_TOKEN", r"vc[pkiar]_", r"[A-Za-z0-9]{40,60}",
       locator=rb"vc[pkiar]_", trigger="vc", check="mixed"),
    _f("supabase_token", "SUPABASE_KEY", r"sbp_", r"[a-f0-9]{40}"),
    _f("supabase_secret", "SUPABASE_KEY", r"sb_secret_", r"[A-Za-z0-9_-]{31,}"),
    _f("planetscale_token", "PLANETSCALE_TOKEN", r"pscale_(?:tkn|pw|oauth)_",
       r"[A-Za-z0-9_.=-]{32,64}", locator=rb"pscale_(?:tkn|pw|oauth)_", trigger="pscale_"),
    _f("tailscale_key", "TAILSCALE_KEY", r"tskey-(?:auth|api|client|webhook|scim)-",
       r"[A-Za-z0-9]{6,}-[A-Za-z0-9]{20,}", locator=rb"tskey-", trigger="tskey-"),
    _f("cloudflare_origin_ca", "CLOUDFLARE_KEY", r"v1\.0-", r"[a-f0-9]{24}-[a-f0-9]{146}",
       locator=rb"v1\.0-[a-f0-9]{24}-", trigger="v1.0-"),
    _f("openshift_token", "OPENSHIFT_TOKEN", "sha256~", r"[A-Za-z0-9_-]{43}", check="mixed"),
    _f("dynatrace_token", "DYNATRACE_TOKEN", r"dt0[a-z]\d{2}\.", r"[A-Z0-9]{24}\.[A-Z0-9]{64}",
       locator=rb"dt0[a-z]\d\d\.", trigger="dt0"),
    _f("age_secret_key", "PRIVATE_KEY", "AGE-SECRET-KEY-1",
       r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", check=""),
    _f("onepassword_secret_key", "ONEPASSWORD_KEY", r"A3-", r"[A-Z0-9]{6}-(?:[A-Z0-9]{11}|"
       r"[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
       locator=rb"A3-[A-Z0-9]{6}-", check=""),
    _f("onepassword_service_token", "ONEPASSWORD_KEY", "ops_eyJ", r"[A-Za-z0-9+/]{250,}={0,3}",
       check="", right=_R64),
    _f("gitlab_session_cookie", "GITLAB_SESSION", "_gitlab_session=", r"[0-9a-z]{32}", check="",
       left=""),
    _f("chieftools_token", "CHIEFTOOLS_TOKEN", r"ct[por]_", r"[A-Za-z0-9]{30,248}",
       locator=rb"ct[por]_", trigger="ct", check="mixed"),
    _f("castai_key", "CASTAI_KEY", "castai_v1_", r"[A-Za-z0-9]{64}_[A-Za-z0-9]{8}"),
    _f("clickhouse_secret", "CLICKHOUSE_KEY", "4b1d", r"[A-Za-z0-9]{38}", check="mixed"),
    _f("authress_key", "AUTHRESS_KEY", r"(?:sc|ext|scauth|authress)_",
       r"[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}",
       locator=rb"(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc",
       trigger=".acc", check="", right=_R64),
    _f("aiven_token", "AIVEN_TOKEN", "AVNS_", r"[A-Za-z0-9_-]{8,}"),
    _f("ansible_vault", "ANSIBLE_VAULT", r"\$ANSIBLE_VAULT;\d\.\d;AES256(?:;[^\s;]+)?[ \t]*\r?\n",
       r"[0-9a-f]{16,}(?:\r?\n[0-9a-f]{16,})*", locator=rb"\$ANSIBLE_VAULT;",
       trigger="$ANSIBLE_VAULT;", check="", value_only=True, left="", right=r"(?![0-9a-f])"),
    _f("sidekiq_secret", "SIDEKIQ_SECRET",
       r"BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM[\"']?\s*(?:=|:|=>)\s*[\"']?",
       r"[a-f0-9]{8}:[a-f0-9]{8}", locator=rb"BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM",
       trigger="__CONTRIBSYS__COM", check="", value_only=True, right=r"(?![\w:])"),
    _f("sidekiq_url", "SIDEKIQ_SECRET", r"https?://", r"[a-f0-9]{8}:[a-f0-9]{8}",
       locator=rb"https?://[a-f0-9]{8}:[a-f0-9]{8}@", trigger="contribsys.com", check="",
       value_only=True, right=r"(?=@(?:gems|enterprise)\.contribsys\.com)"),
    # cloud
    _f("alibaba_key_id", "ALIBABA_KEY", "LTAI", r"[A-Za-z0-9]{20}", check="mixed"),
    _f("yandex_api_key", "YANDEX_KEY", "AQVN", r"[A-Za-z0-9_-]{35,38}", check="mixed"),
    _f("yandex_aws_key", "YANDEX_KEY", "YC", r"[A-Za-z0-9_-]{38}", check="mixed"),
    _f("yandex_iam_token", "YANDEX_KEY", r"t1\.", r"[A-Z0-9a-z_-]+={0,2}\.[A-Z0-9a-z_-]{86}"
       r"={0,2}", locator=rb"t1\.[A-Z0-9a-z_-]{4}", trigger="t1.", check="mixed",
       right=r"(?![\w=-])"),
    _f("ibm_cloud_key", "IBM_CLOUD_KEY", "ApiKey-", _UUID, check=""),
    _f("azure_ad_client_secret", "AZURE_CLIENT_SECRET", r"[A-Za-z0-9_~.]{3}\dQ~",
       r"[A-Za-z0-9_~.-]{31,34}", locator=rb"\dQ~[A-Za-z0-9_~.-]{8}", trigger="Q~",
       check="", right=r"(?![\w~.-])", rewind="_~."),
    _f("google_oauth_client_secret", "GOOGLE_CLIENT_SECRET", "GOCSPX-", r"[A-Za-z0-9_-]{28}"),
    _f("aws_bedrock_key", "AWS_BEDROCK_KEY", "ABSK", r"[A-Za-z0-9+/]{109,269}={0,2}", check="",
       left=r"(?<![A-Za-z0-9+/])", right=_R64),
    _f("aws_bedrock_short_key", "AWS_BEDROCK_KEY", "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t",
       r"[A-Za-z0-9+/=%_-]{20,}", check="", right=_R64),
    _f("datafactory_shir_key", "AZURE_KEY", "IR@",
       r"[0-9A-Za-z-]{36}@[^@\s]{1,80}@[0-9A-Za-z=-]*@[A-Za-z0-9+/=]{44}", check="", right=_R64),
    _f("azure_function_key", "AZURE_KEY", r"[?&]code=", r"[A-Za-z0-9_-]{54}==",
       locator=rb"[?&]code=[A-Za-z0-9_-]{54}==", trigger="code=", check="mixed",
       value_only=True, left="", right=r"(?![\w=-])"),
    _f("softlayer_url_key", "SOFTLAYER_KEY", r"https?://api\.softlayer\.com/soap/v3(?:\.1)?/",
       r"[a-z0-9]{64}", locator=rb"https?://api\.softlayer\.com/soap/v3",
       trigger="api.softlayer.com",
       value_only=True, left=""),
    # AI providers
    _f("groq_key", "AI_API_KEY", "gsk_", r"[A-Za-z0-9]{52}", check="mixed"),
    _f("xai_key", "AI_API_KEY", "xai-", r"[A-Za-z0-9]{80}", check="mixed"),
    _f("replicate_token", "AI_API_KEY", "r8_", r"[A-Za-z0-9]{37}", check="mixed"),
    _f("perplexity_key", "AI_API_KEY", "pplx-", r"[A-Za-z0-9]{48}", check="mixed"),
    _f("huggingface_org_token", "HF_TOKEN", "api_org_", r"[A-Za-z]{34}", check=""),
    _f("openrouter_key", "AI_API_KEY", r"sk-or-(?:v\d+-)?", r"[a-f0-9]{64}", locator=rb"sk-or-",
       trigger="sk-or-", check=""),
    _f("langsmith_key", "LANGSMITH_KEY", r"lsv2_(?:pt|sk)_", r"[a-z0-9]{32}_[a-z0-9]{10}",
       locator=rb"lsv2_(?:pt|sk)_", trigger="lsv2_"),
    _f("claude_session_url", "CLAUDE_SESSION_URL", r"(?:https?://)?claude\.ai/code/session_",
       r"[A-Za-z0-9]{16,}", locator=rb"claude\.ai/code/session_", trigger="claude.ai/code/session_",
       rewind="/:htps"),
    # payments and commerce
    _f("square_access_token", "SQUARE_TOKEN", r"sq0atp-", r"[A-Za-z0-9_-]{22}"),
    _f("square_oauth_secret", "SQUARE_TOKEN", r"sq0csp-", r"[A-Za-z0-9_-]{43}"),
    _f("square_token", "SQUARE_TOKEN", "EAAA", r"[A-Za-z0-9_+=-]{60}", check="mixed"),
    _f("shippo_token", "SHIPPO_TOKEN", r"shippo_(?:live|test)_", r"[a-f0-9]{40}",
       locator=rb"shippo_(?:live|test)_", trigger="shippo_"),
    _f("easypost_key", "EASYPOST_KEY", r"EZ[AT]K", r"[A-Za-z0-9]{54}", locator=rb"EZ[AT]K",
       trigger="EZ", check="mixed"),
    _f("duffel_token", "DUFFEL_TOKEN", r"duffel_(?:test|live)_", r"[A-Za-z0-9_=-]{43}",
       locator=rb"duffel_(?:test|live)_", trigger="duffel_"),
    _f("flutterwave_key", "FLUTTERWAVE_KEY", r"FLW(?:SECK|PUBK)(?:_TEST)?-",
       r"[a-h0-9]{12,32}-X", locator=rb"FLW(?:SECK|PUBK)", trigger="FLW", right=r"(?!\w)"),
    _f("flutterwave_enc_key", "FLUTTERWAVE_KEY", "FLWSECK_TEST-?", r"[a-h0-9]{12}", check="",
       locator=rb"FLWSECK_TEST", trigger="FLWSECK_TEST"),
    _f("braintree_access_token", "BRAINTREE_TOKEN", r"access_token\$(?:production|sandbox)\$",
       r"[a-z0-9]{16}", locator=rb"access_token\$(?:production|sandbox)\$",
       trigger="access_token$", check=""),
    _f("braintree_tokenization_key", "BRAINTREE_TOKEN", r"(?:production|sandbox)_",
       r"[a-z0-9]{8}_[a-z0-9]{16}", locator=rb"(?:production|sandbox)_[a-z0-9]{8}_[a-z0-9]{16}",
       trigger="_"),
    _f("gocardless_token", "GOCARDLESS_TOKEN", r"(?:live|sandbox)_", r"[A-Za-z0-9_=-]{40}",
       locator=rb"(?:live|sandbox)_[A-Za-z0-9_=-]{40}", trigger="_", check="mixed"),
    _f("plaid_access_token", "PLAID_TOKEN", r"access-(?:sandbox|development|production)-",
       _UUID, locator=rb"access-(?:sandbox|development|production)-", trigger="access-"),
    _f("coinbase_key", "COINBASE_KEY", "organizations/", r"[0-9a-f-]{36}/apiKeys/[0-9a-f-]{36}",
       check=""),
    # messaging, mail, social
    _f("slack_app_token", "SLACK_TOKEN", r"xapp-\d-", r"[A-Z0-9]+-\d+-[a-z0-9]+",
       locator=rb"xapp-\d-", trigger="xapp-"),
    _f("telegram_bot_token", "TELEGRAM_TOKEN", r"\d{8,10}:AA", r"[A-Za-z0-9_-]{32,33}",
       locator=rb"\d{8,10}:AA[A-Za-z0-9_-]{8}", trigger=":AA", check=""),
    # detect-secrets takes any 35 characters after the bot id, gitleaks any after `:A`
    _f("telegram_bot_token_any", "TELEGRAM_TOKEN", r"\d{5,16}:", r"[A-Za-z0-9_-]{35}",
       locator=rb"\b\d{5,16}:[A-Za-z0-9_-]{35}", trigger=":", check="mixed"),
    _f("discord_bot_token", "DISCORD_TOKEN", r"[MNO][A-Za-z0-9_-]{23,25}\.",
       r"[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}",
       locator=rb"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.", trigger=".", check="mixed",
       rewind="_-"),
    _f("discord_webhook", "DISCORD_WEBHOOK", r"(?:https?://)?(?:ptb\.|canary\.)?discord(?:app)?"
       r"\.com/api/webhooks/", r"\d{17,20}/[A-Za-z0-9_-]{60,68}",
       locator=rb"(?:https?://)?(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/",
       trigger="/api/webhooks/", check=""),
    _f("teams_webhook", "TEAMS_WEBHOOK", r"https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/",
       r"[A-Za-z0-9@/_-]{60,}", locator=rb"https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/",
       trigger="webhook.office.com", check=""),
    _f("mailchimp_key", "MAILCHIMP_KEY", "", r"[0-9a-z]{32}-us\d{1,2}",
       locator=rb"[0-9a-z]{32}-us\d", trigger="-us", right=r"(?!\w)"),
    _f("brevo_key", "BREVO_KEY", r"x(?:keysib|smtpsib)-", r"[a-f0-9]{64}-[A-Za-z0-9]{16}",
       locator=rb"x(?:keysib|smtpsib)-", trigger="sib-"),
    _f("mailgun_public_key", "MAILGUN_KEY", "pubkey-", r"[a-f0-9]{32}"),
    _f("sendbird_token", "SENDBIRD_TOKEN", "sendbird_", r"[a-f0-9]{40}"),
    _f("typeform_token", "TYPEFORM_TOKEN", "tfp_", r"[A-Za-z0-9_.=-]{40,60}", check="mixed"),
    _f("frameio_token", "FRAMEIO_TOKEN", "fio-u-", r"[A-Za-z0-9_=-]{64}"),
    _f("notion_token", "NOTION_TOKEN", "ntn_", r"[A-Za-z0-9]{40,50}", check="mixed"),
    _f("notion_secret", "NOTION_TOKEN", "secret_", r"[A-Za-z0-9]{43}", check="mixed"),
    _f("airtable_pat", "AIRTABLE_TOKEN", "pat", r"[A-Za-z0-9]{14}\.[a-f0-9]{64}",
       locator=rb"pat[A-Za-z0-9]{14}\.[a-f0-9]{8}", trigger="pat"),
    _f("hubspot_token", "HUBSPOT_TOKEN", r"pat-(?:na|eu|ap)\d-", _UUID,
       locator=rb"pat-(?:na|eu|ap)\d-", trigger="pat-"),
    _f("launchdarkly_key", "LAUNCHDARKLY_KEY", r"(?:api|sdk|mob)-", _UUID,
       locator=rb"(?:api|sdk|mob)-[0-9a-f]{8}-", trigger="-", check=""),
    _f("contentful_token", "CONTENTFUL_TOKEN", "CFPAT-", r"[A-Za-z0-9_-]{43}"),
    _f("adobe_secret", "ADOBE_SECRET", "p8e-", r"[A-Za-z0-9]{32}"),
    _f("defined_networking_key", "DEFINED_NETWORKING_KEY", "dnkey-",
       r"[a-z0-9=_-]{26}-[a-z0-9=_-]{52}"),
    _f("intra42_secret", "INTRA42_SECRET", r"s-s4t2(?:ud|af)-", r"[a-f0-9]{64}",
       locator=rb"s-s4t2(?:ud|af)-", trigger="s-s4t2"),
    _f("maxmind_key", "MAXMIND_KEY", "", r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk",
       locator=rb"_[A-Za-z0-9]{29}_mmk", trigger="_mmk", check="mixed", rewind="_"),
    _f("settlemint_token", "SETTLEMINT_TOKEN", r"sm_(?:aat|pat|sat)_", r"[A-Za-z0-9]{16}",
       locator=rb"sm_(?:aat|pat|sat)_", trigger="sm_"),
    _f("sentry_org_token", "SENTRY_DSN", "sntrys_eyJ", r"[A-Za-z0-9+/=_-]{60,}", check="",
       right=_R64),
    _f("sentry_user_token", "SENTRY_DSN", "sntryu_", r"[a-f0-9]{64}"),
    _f("facebook_app_token", "FACEBOOK_TOKEN", r"\d{15,16}[|%]", r"[A-Za-z0-9_-]{27,40}",
       locator=rb"\b\d{15,16}[|%][A-Za-z0-9_-]{27}", trigger=""),
    _f("twitter_bearer", "TWITTER_TOKEN", "A{20,}", r"[A-Za-z0-9%]{60,}",
       locator=rb"AAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{8}", trigger="AAAAAAAAAAAAAAAAAAAA",
       check="mixed"),
    _f("facebook_token", "FACEBOOK_TOKEN", "EAA[A-Za-z0-9]", r"[A-Za-z0-9]{100,}",
       locator=rb"EAA[A-Za-z0-9]{12}", trigger="EAA", check="mixed"),
    _f("mapbox_secret", "MAPBOX_TOKEN", r"[st]k\.eyJ", r"[A-Za-z0-9_-]{40,}\.[A-Za-z0-9_-]{20,}",
       locator=rb"[st]k\.eyJ", trigger="k.eyJ", check=""),
    _f("grafana_api_key", "GRAFANA_TOKEN", "eyJrIjoi", r"[A-Za-z0-9]{60,400}={0,2}",
       check="", right=_R64),
    _f("adafruit_key", "ADAFRUIT_KEY", "aio_", r"[A-Za-z0-9]{28}", check="mixed"),
    _f("okta_token", "OKTA_TOKEN", r"SSWS\s+", r"00[A-Za-z0-9_-]{40}", locator=rb"SSWS\s+00",
       trigger="SSWS", value_only=True),
    # not after `+` or `/` either: `00` and forty characters occur inside base64 key material
    _f("okta_token_bare", "OKTA_TOKEN", "00", r"[A-Za-z0-9_-]{40,}",
       locator=rb"\b00[A-Za-z0-9_-]{40}", left=r"(?<![\w+/-])",
       check="mixed", right=r"(?![\w+/=-])", version="2"),
    _f("jwt_base64", "JWT", "ZXlK", r"[A-Za-z0-9+/_-]{40,}={0,2}", check="", right=_R64,
       left=r"(?<![A-Za-z0-9+/_-])"),
    _f("django_insecure_key", "SECRET", "django-insecure-",
       r"[A-Za-z0-9!@#$%^&*(_=+.-]{19,249}[A-Za-z0-9!@#$%^&*(_=+-]", check="",
       right=r"(?![A-Za-z0-9!@#$%^&*(_=+-])"),
    # a nuget.config <add key="ClearTextPassword" value="..."/>, also with JSON-escaped quotes
    _f("nuget_config_password", "PASSWORD",
       r"<add\s+key=\\?\"(?:ClearText)?Password\\?\"\s+value=\\?\"", r"(?!<[A-Z])[^\"\\\n]{8,200}",
       locator=rb"<add\s+key=\\?\"(?:ClearText)?Password", trigger="Password", check="",
       value_only=True, left="", right=r"(?=\\?\")"),
    _f("dropbox_token", "DROPBOX_TOKEN", r"sl\.(?:u\.)?", r"[A-Za-z0-9_=-]{130,}",
       locator=rb"sl\.(?:u\.)?[A-Za-z0-9_=-]{20}", trigger="sl.", check="mixed"),
    _f("linear_oauth", "LINEAR_KEY", "lin_oauth_", r"[a-f0-9]{64}"),
    _f("asana_pat", "ASANA_TOKEN", r"[12]/", r"\d{16}(?::[A-Za-z0-9]{32}|/\d{16}:[a-f0-9]{32})",
       locator=rb"[12]/\d{16}[:/]", trigger="/", check=""),
    _f("zendesk_token", "ZENDESK_TOKEN", "/token:", r"[A-Za-z0-9]{40}", check="mixed",
       value_only=True, left=""),
    _f("putty_private_key", "PRIVATE_KEY", r"PuTTY-User-Key-File-\d:",
       r"[^\n]*(?:\n[^\n]*){1,80}?\nPrivate-(?:MAC|Hash):\s*[0-9a-f]{40,64}",
       locator=rb"PuTTY-User-Key-File-", trigger="PuTTY-User-Key-File-", check="",
       right=r"(?![0-9a-f])"),
    _f("putty_private_lines", "PRIVATE_KEY", r"Private-Lines:\s*\d+\n",
       r"(?:[A-Za-z0-9+/=]{8,}\n?)+", locator=rb"Private-Lines:", trigger="Private-Lines:",
       check="", right=""),
)


@dataclass(frozen=True)
class VendorKey:
    """One vendor's keyword rule: `names` (a regex, matched case-insensitively) is how the
    vendor is written in a key; `values` are the value shapes its rules state, each a regex
    that also states what the value must hold (a letter and a digit for an alphanumeric key),
    so that a word or a number of the right length alone is not taken."""

    name: str
    names: str
    values: tuple[str, ...]


def _alnum(n: int) -> str:
    """n letters and digits, at least one of each."""
    return rf"(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{{{n}}}"


def _hex(n: int) -> str:
    return rf"(?=[A-Fa-f]*\d)(?=\d*[A-Fa-f])[0-9A-Fa-f]{{{n}}}"


def _urlsafe(n: str) -> str:
    """n characters of [A-Za-z0-9_=-] (n may be a range, `40,46`), a letter and a digit."""
    return rf"(?=[\w=-]*\d)(?=[\d_=-]*[A-Za-z])[\w=-]{{{n}}}"


def _digits(n: int) -> str:
    return rf"\d{{{n}}}"


_ANY_UUID = f"(?i:{_UUID})"  # vendors print their UUIDs in either case
_V = VendorKey
VENDOR_KEYS: tuple[VendorKey, ...] = (
    _V("adafruit", "adafruit", (_urlsafe("32"),)),
    _V("adobe", "adobe", (_hex(32),)),
    _V("airtable", "airtable", (_alnum(17),)),
    _V("algolia", "algolia", (_alnum(32),)),
    _V("alibaba", "alibaba", (_alnum(30),)),
    _V("asana", "asana", (_digits(16), _alnum(32))),
    _V("atlassian", "atlassian|confluence|jira",
       (r"(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{20}[0-9A-Fa-f]{4}",)),
    _V("beamer", "beamer", ("b_" + _urlsafe("44"),)),
    _V("bitbucket", "bitbucket", (_alnum(32), _urlsafe("64"))),
    _V("bittrex", "bittrex", (_alnum(32),)),
    _V("cisco_meraki", "meraki", (_hex(40),)),
    _V("cloudant", r"(?:cloudant[ _.-]?|clou[_-]?|cl[_-]?)(?:api[ _.-]?)?"
       r"(?:key|pwd|pw|password|pass|token)",
       (r"[A-Za-z]{24}", _hex(64))),
    _V("cloudflare", "cloudflare", (_urlsafe("40"), _hex(37))),
    _V("codecov", "codecov", (_alnum(32),)),
    _V("cohere", "cohere|co_api_key", (_alnum(40),)),
    _V("coinbase", "coinbase", (_urlsafe("64"),)),
    _V("confluent", "confluent", (_alnum(16), _alnum(64))),
    _V("contentful", "contentful", (_urlsafe("43"),)),
    _V("datadog", "datadog", (_alnum(40),)),
    _V("discord", "discord", (_digits(18), _hex(64), _urlsafe("32"))),
    _V("droneci", "droneci", (_alnum(32),)),
    _V("dropbox", "dropbox", (_alnum(15), r"[A-Za-z0-9]{11}A{10}[\w=-]{43}")),
    _V("etsy", "etsy", (_alnum(24),)),
    _V("facebook", "facebook", (_hex(32),)),
    _V("fastly", "fastly", (_urlsafe("32"),)),
    _V("finicity", "finicity", (_hex(32), _alnum(20))),
    _V("finnhub", "finnhub", (_alnum(20),)),
    _V("flickr", "flickr", (_alnum(32),)),
    _V("freshbooks", "freshbooks", (_alnum(64),)),
    _V("gitter", "gitter", (_urlsafe("40"),)),
    _V("heroku", "heroku", (_ANY_UUID,)),
    _V("hubspot", "hubspot", (_ANY_UUID,)),
    _V("intercom", "intercom", (_urlsafe("60"),)),
    _V("jfrog", "jfrog|artifactory|bintray|xray", (_alnum(73), _alnum(64))),
    _V("kraken", "kraken", (r"(?=[\w/=+-]*\d)(?=[\d/=_+-]*[A-Za-z])[\w/=+-]{80,90}",)),
    _V("kucoin", "kucoin", (_hex(24), _ANY_UUID)),
    _V("launchdarkly", "launchdarkly", (_urlsafe("40"),)),
    _V("linear", "linear", (_hex(32),)),
    _V("linkedin", "linked[_-]?in", (_alnum(14), _alnum(16))),
    _V("looker", "looker", (_alnum(20), _alnum(24))),
    _V("mailgun", "mailgun", (r"[a-h0-9]{32}-[a-h0-9]{8}-[a-h0-9]{8}",)),
    _V("mapbox", "mapbox", (r"pk\.[A-Za-z0-9]{60}\.[A-Za-z0-9]{22}",)),
    _V("mattermost", "mattermost", (_alnum(26),)),
    _V("messagebird", "message[_-]?bird", (_alnum(25), _ANY_UUID)),
    _V("netlify", "netlify", (_urlsafe("40,46"),)),
    _V("new_relic", "new[_-]?relic", (_alnum(64),)),
    _V("nytimes", "nytimes|new[_-]?york[_-]?times", (_urlsafe("32"),)),
    _V("plaid", "plaid", (_alnum(24), _alnum(30))),
    _V("private_ai", "private[_-]?ai", (_alnum(32),)),
    _V("rapidapi", "rapidapi", (_urlsafe("50"),)),
    _V("sendbird", "sendbird", (_ANY_UUID, _hex(40))),
    _V("sentry", "sentry", (_hex(64),)),
    _V("snyk", r"snyk[_.-]?(?:(?:api|oauth)[_.-]?)?(?:key|token)", (_ANY_UUID,)),
    _V("sonar", r"sonar[_.-]?(?:login|token)", (r"(?:sq[upa]_)?" + _urlsafe("40"),)),
    _V("squarespace", "squarespace", (_ANY_UUID,)),
    _V("sumologic", "sumo", (r"su(?=[A-Za-z]*\d)[A-Za-z0-9]{12}", _alnum(64))),
    _V("travisci", "travis", (_alnum(22),)),
    _V("twitch", "twitch", (_alnum(30),)),
    # a legacy Vault service token (`s.` and 24 letters and digits, not one lowercase word)
    _V("vault", "vault", (r"s\.(?![a-z]{24})[A-Za-z0-9]{24}",)),
    _V("twitter", "twitter",
       (_alnum(25), _alnum(45), _alnum(50), r"\d{15,25}-[A-Za-z0-9]{20,40}")),
    _V("zendesk", "zendesk", (_alnum(40),)),
)
