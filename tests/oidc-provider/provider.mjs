// A real OpenID Provider for Ayush's tests: the `oidc-provider` package (OpenID Certified),
// on loopback, with one client and dev interactions (a login form that takes any password).
// Usage: node provider.mjs PORT REDIRECT_URI POST_LOGOUT_REDIRECT_URI
import Provider from 'oidc-provider';

const [port, redirectUri, postLogout] = process.argv.slice(2);
const groups = { alice: ['ayush-admins', 'staff'], bob: ['staff'] };
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'ayush',
    client_secret: 'ayush-client-secret',
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [postLogout],
    response_types: ['code'],
    grant_types: ['authorization_code'],
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: `sub-${id}`, preferred_username: id, name: `${id[0].toUpperCase()}${id.slice(1)} Example`, email: `${id}@example.com`, email_verified: true, groups: groups[id] || [] };
      },
    };
  },
});
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`));
