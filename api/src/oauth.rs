//! OAuth2 with mail providers (Microsoft, Google): the authorization-code flow with PKCE, and
//! refreshing and revoking grants. The `oauth2` crate talks to the providers; this module
//! knows Herald's registration with each (`HERALD_OAUTH_*`) and nothing of mailboxes, which
//! are [`crate::mailboxes`]' business.

use chrono::{DateTime, Utc};
use entity::mailbox::Provider;
use oauth2::{
    basic::{BasicClient, BasicErrorResponseType},
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, RevocationUrl, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};

use crate::config::{OAuthConfig, OAuthProvider};

/// An access token without a stated lifetime is taken to last this long (RFC 6749 leaves
/// `expires_in` optional; both providers send it).
const DEFAULT_LIFETIME: chrono::Duration = chrono::Duration::minutes(55);

/// Why talking to a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("sign-in with {0:?} is not configured on this server")]
    NotConfigured(Provider),
    /// The provider answered with an OAuth2 error: `invalid_grant` for a code that expired or
    /// was used, or a refresh token that was revoked.
    #[error("the provider refused: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { code: String, description: Option<String> },
    /// The provider could not be reached, or answered something else than OAuth2.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
}

impl OAuthError {
    /// The grant is gone for good (revoked, expired, password changed): only signing in again
    /// helps. Anything else may pass if tried again later.
    pub fn grant_is_gone(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code == "invalid_grant")
    }
}

/// What the browser is sent to the provider with, and what Herald keeps to finish the flow.
pub struct Authorization {
    /// The provider's authorization page, with the client, scopes, state and PKCE challenge.
    pub url: String,
    /// The `state` parameter (random, single-use).
    pub state: String,
    /// The PKCE code verifier (RFC 7636) for the code exchange.
    pub pkce_verifier: String,
}

/// Tokens from a code exchange or a refresh. `Debug` shows neither token.
pub struct Tokens {
    pub access_token: String,
    /// A refresh may rotate the refresh token or keep the old one (`None`).
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("refresh_token", &self.refresh_token.as_ref().map(|_| "<set>")).field("expires_at", &self.expires_at).finish()
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Herald's registrations with the providers, and one HTTP client for talking to them.
pub struct Providers {
    config: OAuthConfig,
    http: reqwest::Client,
}

impl Providers {
    pub fn new(config: &OAuthConfig) -> Self {
        // The token endpoint must not redirect (RFC 6749 §3.2 answers directly); following a
        // redirect could leak the code to another host.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(crate::smtp::TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { config: config.clone(), http }
    }

    pub fn is_configured(&self, provider: Provider) -> bool {
        self.registration(provider).is_ok()
    }

    fn registration(&self, provider: Provider) -> Result<&OAuthProvider, OAuthError> {
        let found = match provider {
            Provider::Microsoft => self.config.microsoft.as_ref(),
            Provider::Google => self.config.google.as_ref(),
        };
        found.filter(|_| self.config.redirect_url.is_some()).ok_or(OAuthError::NotConfigured(provider))
    }

    fn client(&self, provider: Provider) -> Result<(Client, &OAuthProvider), OAuthError> {
        let registration = self.registration(provider)?;
        let invalid = |what: &str, e: &dyn std::fmt::Display| OAuthError::Unreachable(format!("the configured {what} is not a URL: {e}"));
        let mut client = BasicClient::new(ClientId::new(registration.client_id.clone()))
            .set_auth_uri(AuthUrl::new(registration.authorize_url.clone()).map_err(|e| invalid("authorization URL", &e))?)
            .set_token_uri(TokenUrl::new(registration.token_url.clone()).map_err(|e| invalid("token URL", &e))?)
            .set_redirect_uri(RedirectUrl::new(self.config.redirect_url.clone().unwrap_or_default()).map_err(|e| invalid("redirect URL", &e))?);
        if let Some(secret) = &registration.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok((client, registration))
    }

    /// Starts a sign-in: the provider's authorization URL for `login_hint` (the mailbox's
    /// address), with a fresh state and PKCE challenge.
    pub fn authorize(&self, provider: Provider, login_hint: &str) -> Result<Authorization, OAuthError> {
        let (client, registration) = self.client(provider)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge).add_extra_param("login_hint", login_hint);
        for scope in &registration.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if provider == Provider::Google {
            // Google grants a refresh token only when asked for offline access, and again on
            // a later sign-in only with consent asked again.
            request = request.add_extra_param("access_type", "offline").add_extra_param("prompt", "consent");
        }
        let (url, state) = request.url();
        Ok(Authorization { url: url.to_string(), state: state.secret().clone(), pkce_verifier: verifier.secret().clone() })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange(&self, provider: Provider, code: &str, pkce_verifier: &str) -> Result<Tokens, OAuthError> {
        let (client, _) = self.client(provider)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await;
        tokens(answer)
    }

    /// A fresh access token for a grant.
    pub async fn refresh(&self, provider: Provider, refresh_token: &str) -> Result<Tokens, OAuthError> {
        let (client, _) = self.client(provider)?;
        let token = RefreshToken::new(refresh_token.to_string());
        tokens(client.exchange_refresh_token(&token).request_async(&self.http).await)
    }

    /// Revokes a grant where the provider offers revocation (RFC 7009); `Ok(false)` where it
    /// does not.
    pub async fn revoke(&self, provider: Provider, refresh_token: &str) -> Result<bool, OAuthError> {
        let (client, registration) = self.client(provider)?;
        let Some(url) = &registration.revocation_url else { return Ok(false) };
        let client = client.set_revocation_url(RevocationUrl::new(url.clone()).map_err(|e| OAuthError::Unreachable(e.to_string()))?);
        let token = StandardRevocableToken::RefreshToken(RefreshToken::new(refresh_token.to_string()));
        match client.revoke_token(token) {
            Ok(request) => request.request_async(&self.http).await.map(|_| true).map_err(|e| OAuthError::Unreachable(e.to_string())),
            Err(e) => Err(OAuthError::Unreachable(e.to_string())),
        }
    }

    /// Whether the browser may be sent to `url` after a sign-in: it must start with one of
    /// the configured return URLs, compared as parsed URLs (scheme, host and port equal, the
    /// path under the configured one), so that `https://crm.example.com.evil.test` never
    /// passes for `https://crm.example.com`.
    pub fn return_allowed(&self, url: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(url) else { return false };
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        self.config.return_urls.iter().filter_map(|allowed| reqwest::Url::parse(allowed).ok()).any(|allowed| {
            let under = |base: &str, path: &str| path == base || path.starts_with(&format!("{}/", base.trim_end_matches('/')));
            allowed.scheme() == url.scheme()
                && allowed.host_str() == url.host_str()
                && allowed.port_or_known_default() == url.port_or_known_default()
                && under(allowed.path(), url.path())
        })
    }
}

type TokenAnswer = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<oauth2::HttpClientError<reqwest::Error>, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
>;

fn tokens(answer: TokenAnswer) -> Result<Tokens, OAuthError> {
    match answer {
        Ok(t) => {
            let lifetime = t.expires_in().and_then(|d| chrono::Duration::from_std(d).ok()).unwrap_or(DEFAULT_LIFETIME);
            Ok(Tokens {
                access_token: t.access_token().secret().clone(),
                refresh_token: t.refresh_token().map(|r| r.secret().clone()),
                expires_at: Utc::now() + lifetime,
            })
        }
        Err(RequestTokenError::ServerResponse(e)) => {
            Err(OAuthError::Refused { code: e.error().as_ref().to_string(), description: e.error_description().cloned() })
        }
        // The error's text never holds the request's body (the code or refresh token).
        Err(e) => Err(OAuthError::Unreachable(crate::smtp::error_chain(&e))),
    }
}
