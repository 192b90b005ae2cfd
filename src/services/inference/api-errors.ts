import type { InferenceApi } from '../../profile/inference.js';

/**
 * Errors the router itself produces, in the body shape of the API the caller speaks, so an SDK
 * raises its ordinary error class with our message instead of failing to parse the body.
 * Every such response also carries `x-clawjail-error: <code>` to tell it apart from an upstream error.
 */

export type RouterErrorCode =
  | 'route_not_found'
  | 'path_not_found'
  | 'method_not_allowed'
  | 'invalid_json'
  | 'duplicate_key'
  | 'model_required'
  | 'model_not_allowed'
  | 'body_too_large'
  | 'credential_missing'
  | 'upstream_unreachable'
  | 'upstream_tls'
  | 'upstream_reset'
  | 'upstream_timeout'
  | 'upstream_encoding'
  | 'router_closing';

export const ROUTER_ERROR_HEADER = 'x-clawjail-error';

function openaiType(status: number): string {
  if (status >= 500) return 'server_error';
  if (status === 403) return 'permission_error';
  return 'invalid_request_error';
}

function anthropicType(status: number): string {
  switch (status) {
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** The JSON error body for `api`. */
export function errorBody(api: InferenceApi, status: number, code: RouterErrorCode, message: string): Record<string, unknown> {
  if (api === 'anthropic') {
    return { type: 'error', error: { type: anthropicType(status), message }, request_id: null };
  }
  return { error: { message, type: openaiType(status), param: code === 'model_not_allowed' || code === 'model_required' ? 'model' : null, code } };
}

/**
 * The event that ends an SSE stream which broke after its headers were sent: the status line is
 * gone, so the error travels in the stream the way each API reports mid-stream failures.
 */
export function streamErrorEvent(api: InferenceApi, code: RouterErrorCode, message: string): string {
  if (api === 'anthropic') {
    return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: code === 'upstream_timeout' ? 'timeout_error' : 'api_error', message } })}\n\n`;
  }
  return `data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code } })}\n\n`;
}
