// Authentication of the web API's mutations, shared by the lease and static-host endpoints: the
// token from `Authorization: Bearer np_...` (or `X-Auth-Token`), checked against the database,
// the scope the endpoint needs, and one rate limit per token across every endpoint.
import type { FastifyRequest } from 'fastify';
import { ApiError, UnavailableError } from './errors.js';
import type { TokenInfo, TokenScope, TokenStore } from './tokens.js';

/** A token bucket per token id. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly burst: number, private readonly perMinute: number) {}

  /** null when allowed, else the seconds to wait. */
  take(key: string, nowMs = Date.now()): number | null {
    const rate = this.perMinute / 60_000;
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: nowMs };
    b.tokens = Math.min(this.burst, b.tokens + (nowMs - b.at) * rate);
    b.at = nowMs;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return null;
    }
    return rate > 0 ? Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000)) : 60;
  }
}

export class Authenticator {
  private readonly limiter: RateLimiter;

  constructor(
    /** null while the database is unavailable */
    private readonly store: () => TokenStore | null,
    private readonly rate: { rateBurst: number; ratePerMinute: number },
  ) {
    this.limiter = new RateLimiter(rate.rateBurst, rate.ratePerMinute);
  }

  private tokens(): TokenStore {
    const t = this.store();
    if (!t) throw new UnavailableError('database_unavailable', 'tokens cannot be checked: the launcher cannot reach its database');
    return t;
  }

  /**
   * The caller's token, checked and holding `scope`; throws 401 (no or unknown token), 403
   * (revoked, expired, or without the scope: `insufficient_scope` as RFC 6750 names it) or 429.
   */
  async authenticate(req: FastifyRequest, scope: TokenScope): Promise<TokenInfo> {
    const auth = req.headers.authorization;
    const alt = req.headers['x-auth-token'];
    let presented: string | null = null;
    if (typeof auth === 'string' && auth.trim() !== '') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (!m?.[1]) throw new ApiError(401, 'invalid_token', 'the Authorization header must be "Bearer <token>"');
      presented = m[1];
    } else if (typeof alt === 'string' && alt.trim() !== '') {
      presented = alt.trim();
    }
    if (presented === null) {
      throw new ApiError(401, 'missing_token', 'this endpoint needs a token: "Authorization: Bearer <token>" (nodepool token create)');
    }
    const check = await this.tokens().verify(presented);
    if (!check.ok) {
      if (check.reason === 'revoked') throw new ApiError(403, 'token_revoked', 'this token has been revoked');
      if (check.reason === 'expired') throw new ApiError(403, 'token_expired', 'this token has expired');
      throw new ApiError(401, 'invalid_token', 'unknown or malformed token');
    }
    const token = check.token;
    if (!token.scopes.includes(scope)) {
      throw new ApiError(403, 'insufficient_scope',
        `token ${token.name} lacks the scope ${scope} (it has: ${token.scopes.join(', ') || 'none'}); `
        + `create one with "nodepool token create --name NAME --scope ${scope}"`,
        { scope, token_scopes: token.scopes }, null,
        { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"` });
    }
    const wait = this.limiter.take(token.id);
    if (wait !== null) {
      throw new ApiError(429, 'rate_limited',
        `too many requests for token ${token.name}: at most ${this.rate.ratePerMinute} per minute (bursts of ${this.rate.rateBurst})`,
        { retry_after: wait }, wait);
    }
    void this.tokens().touch(token.id).catch(() => undefined);
    req.log.info({ token: token.name, scope }, 'authenticated');
    return token;
  }
}
