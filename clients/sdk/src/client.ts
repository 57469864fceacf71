import type { DocumentTypeDecoration, ResultOf, VariablesOf } from '@graphql-typed-document-node/core';
import { FleetApiError, FleetNetworkError, isApiErrorList } from './errors';
import * as ops from './graphql';
import { LiveConnection, LocationStream, type ConnectionState, type LocationStreamOptions } from './live';

/**
 * Returns the ID token to send, or null when signed out. `forceRefresh`: the current one was
 * refused or is about to expire; return a new one (see `signIn`, which does exactly that).
 */
export type TokenSource = (options?: { forceRefresh?: boolean }) => string | null | undefined | Promise<string | null | undefined>;

export interface FleetClientOptions {
  /** The gateway's GraphQL endpoint, e.g. http://localhost:4000/graphql. */
  url: string;
  /** Omitted: anonymous (register, login and refreshSession only). */
  getToken?: TokenSource;
  /** The graphql-ws endpoint; default: `url` with ws(s)://. */
  wsUrl?: string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** A WebSocket class; default: the global one (browsers, Node 22). On Node 20 pass `ws`'s. */
  webSocketImpl?: unknown;
  /** Told whenever the live connection changes state (a dashboard's indicator). */
  onConnectionChange?: (state: ConnectionState) => void;
  /** How long before the ID token expires the open socket gets a fresh one. Default 60 s. */
  refreshLeadMs?: number;
  /** Reconnect back-off of the live socket, ms. Default 250 doubling to 5000, with jitter. */
  reconnectDelayMs?: { initial: number; max: number };
}

/** A document as codegen emits it (`documentMode: 'string'`): its text, typed with result and variables. */
export type FleetDocument<TResult, TVariables> = DocumentTypeDecoration<TResult, TVariables> & { toString(): string };

export interface FleetClient {
  /** Any typed document (the SDK's own, or one of yours generated the same way). */
  request<TResult, TVariables>(document: FleetDocument<TResult, TVariables>, variables?: TVariables): Promise<TResult>;
  me(): Promise<ops.MeQuery['me']>;
  tenants(): Promise<ops.TenantsQuery['tenants']>;
  tenant(id: string): Promise<ops.TenantQuery['tenant']>;
  devices(): Promise<ops.DevicesQuery['devices']>;
  device(id: string): Promise<ops.DeviceQuery['device']>;
  /** A device's history, newest `recordedAt` first (null: no such device visible to the caller). */
  deviceLocations(variables: ops.DeviceLocationsQueryVariables): Promise<NonNullable<ops.DeviceLocationsQuery['device']>['locations'] | null>;
  /** The account stays unconfirmed until `confirmRegistration` with the code emailed to the address. */
  register(email: string, password: string): Promise<ops.RegisterMutation['register']>;
  confirmRegistration(email: string, code: string): Promise<ops.ConfirmRegistrationMutation['confirmRegistration']>;
  /** Always true, whether or not the address has a pending registration. */
  resendConfirmationCode(email: string): Promise<boolean>;
  login(email: string, password: string): Promise<ops.LoginMutation['login']>;
  refreshSession(refreshToken: string): Promise<ops.RefreshSessionMutation['refreshSession']>;
  createTenant(name: string): Promise<ops.CreateTenantMutation['createTenant']>;
  addTenantMember(tenantId: string, email: string): Promise<ops.AddTenantMemberMutation['addTenantMember']>;
  registerDevice(name: string): Promise<ops.RegisterDeviceMutation['registerDevice']>;
  recordLocation(input: ops.LocationInput): Promise<ops.RecordLocationMutation['recordLocation']>;
  /** At most 1000, all or nothing. */
  recordLocations(inputs: ops.LocationInput[]): Promise<ops.RecordLocationsMutation['recordLocations']>;
  /**
   * Live locations as an async iterator: every location once, in acceptance order per device,
   * across reconnects (it resumes with `after` from the last sequence it delivered per device).
   * Break out of the loop (or call `close()`) to unsubscribe.
   */
  locationUpdated(variables: ops.LocationUpdatedSubscriptionVariables, options?: LocationStreamOptions): LocationStream;
  readonly connectionState: ConnectionState;
  /** Ends every subscription and closes the socket. */
  close(): Promise<void>;
}

export function createFleetClient(options: FleetClientOptions): FleetClient {
  const fetchImpl = options.fetch ?? ((...args: Parameters<typeof fetch>) => fetch(...args));
  const getToken = options.getToken ?? (() => null);
  let live: LiveConnection | undefined;
  const connection = () =>
    (live ??= new LiveConnection({
      url: options.wsUrl ?? options.url.replace(/^http/, 'ws'),
      getToken,
      webSocketImpl: options.webSocketImpl,
      refreshLeadMs: options.refreshLeadMs ?? 60_000,
      reconnectDelayMs: options.reconnectDelayMs ?? { initial: 250, max: 5_000 },
      onState: options.onConnectionChange,
    }));

  async function request<TResult, TVariables>(document: FleetDocument<TResult, TVariables>, variables?: TVariables): Promise<TResult> {
    const token = await getToken();
    let response: Response;
    try {
      response = await fetchImpl(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query: document.toString(), variables: variables ?? {} }),
      });
    } catch (error) {
      throw new FleetNetworkError(`The API could not be reached: ${error instanceof Error ? error.message : String(error)}`, undefined, { cause: error });
    }
    let body: { data?: TResult | null; errors?: unknown };
    try {
      body = (await response.json()) as typeof body;
    } catch (error) {
      throw new FleetNetworkError(`The API answered HTTP ${response.status} without a GraphQL response`, response.status, { cause: error });
    }
    if (isApiErrorList(body.errors) && body.errors.length) throw new FleetApiError(body.errors, response.status);
    if (body.data === undefined || body.data === null) throw new FleetNetworkError(`The API answered HTTP ${response.status} without data`, response.status);
    return body.data;
  }

  const call = <D extends FleetDocument<any, any>>(document: D, variables: VariablesOf<D>) => request(document, variables) as Promise<ResultOf<D>>;

  return {
    request,
    me: async () => (await call(ops.MeDocument, {})).me,
    tenants: async () => (await call(ops.TenantsDocument, {})).tenants,
    tenant: async (id) => (await call(ops.TenantDocument, { id })).tenant,
    devices: async () => (await call(ops.DevicesDocument, {})).devices,
    device: async (id) => (await call(ops.DeviceDocument, { id })).device,
    deviceLocations: async (variables) => (await call(ops.DeviceLocationsDocument, variables)).device?.locations ?? null,
    register: async (email, password) => (await call(ops.RegisterDocument, { email, password })).register,
    confirmRegistration: async (email, code) => (await call(ops.ConfirmRegistrationDocument, { email, code })).confirmRegistration,
    resendConfirmationCode: async (email) => (await call(ops.ResendConfirmationCodeDocument, { email })).resendConfirmationCode,
    login: async (email, password) => (await call(ops.LoginDocument, { email, password })).login,
    refreshSession: async (refreshToken) => (await call(ops.RefreshSessionDocument, { refreshToken })).refreshSession,
    createTenant: async (name) => (await call(ops.CreateTenantDocument, { name })).createTenant,
    addTenantMember: async (tenantId, email) => (await call(ops.AddTenantMemberDocument, { tenantId, email })).addTenantMember,
    registerDevice: async (name) => (await call(ops.RegisterDeviceDocument, { name })).registerDevice,
    recordLocation: async (input) => (await call(ops.RecordLocationDocument, { input })).recordLocation,
    recordLocations: async (inputs) => (await call(ops.RecordLocationsDocument, { inputs })).recordLocations,
    locationUpdated: (variables, streamOptions) => new LocationStream(connection(), variables, streamOptions),
    get connectionState() {
      return live?.state ?? 'idle';
    },
    close: async () => {
      await live?.close();
      live = undefined;
    },
  };
}
