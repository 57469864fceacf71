import { createFleetClient, type TokenSource } from './client';
import { FleetApiError } from './errors';
import type { SessionFieldsFragment } from './graphql';
import { refreshTime, tokenTimes } from './tokens';

export interface FleetSession {
  /** Who signed in (as of the last refresh). */
  readonly user: SessionFieldsFragment['user'];
  /**
   * The current ID token, refreshed through `refreshSession` when it is about to expire or when
   * asked to (`forceRefresh`); null once the session cannot be refreshed (signed out).
   */
  readonly getToken: TokenSource;
  signOut(): void;
}

export interface SignInOptions {
  url: string;
  email: string;
  password: string;
  fetch?: typeof fetch;
  /** Refresh this long before the ID token expires (at most half its lifetime). Default 60 s. */
  refreshLeadMs?: number;
}

/** A token minted this recently is as fresh as a refresh would make it. */
const FRESH_MS = 1_000;

/** Signs in with `login` and keeps the ID token fresh with `refreshSession`. */
export async function signIn(options: SignInOptions): Promise<FleetSession> {
  const anonymous = createFleetClient({ url: options.url, fetch: options.fetch });
  let current = await anonymous.login(options.email, options.password);
  let obtainedAt = Date.now();
  let signedOut = false;
  let refreshing: Promise<void> | undefined;
  const leadMs = options.refreshLeadMs ?? 60_000;

  const refresh = () =>
    (refreshing ??= (async () => {
      if (!current.refreshToken) {
        signedOut = true;
        return;
      }
      try {
        current = await anonymous.refreshSession(current.refreshToken);
        obtainedAt = Date.now();
      } catch (error) {
        // A refresh token that no longer works ends the session; anything else is passing (thrown).
        if (error instanceof FleetApiError && (error.code === 'UNAUTHENTICATED' || error.code === 'BAD_USER_INPUT')) signedOut = true;
        else throw error;
      }
    })().finally(() => {
      refreshing = undefined;
    }));

  return {
    get user() {
      return current.user;
    },
    getToken: async ({ forceRefresh = false } = {}) => {
      if (signedOut) return null;
      const due = refreshTime(tokenTimes(current.idToken), leadMs) ?? obtainedAt + current.expiresIn * 1000 - leadMs;
      if ((forceRefresh && Date.now() - obtainedAt > FRESH_MS) || Date.now() >= due) await refresh();
      return signedOut ? null : current.idToken;
    },
    signOut: () => {
      signedOut = true;
    },
  };
}
