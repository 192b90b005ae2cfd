import type { InferenceRoute } from '../../profile/inference.js';
import type { RouterErrorCode } from './api-errors.js';
import { findDuplicateKey, modelLookalikes } from './json-keys.js';

export type ModelDecision =
  | { ok: true; body: Buffer; model: string | undefined; upstreamModel: string | undefined; json: unknown }
  | { ok: false; status: 400 | 403; code: RouterErrorCode; message: string; model?: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Applies a route's model rules to a request body: the `models` allowlist on the model the
 * caller asked for, then `rewriteModel`. Pure. The original bytes are forwarded untouched
 * unless the model is rewritten, so first the body must mean the same to every JSON parser:
 * valid UTF-8, no key twice in one object (at any depth), and no top-level key that a
 * case-insensitive parser reads as `model`. Anything else is refused with 400.
 */
export function applyModelPolicy(route: InferenceRoute, body: Buffer): ModelDecision {
  if (body.length === 0) {
    if (route.models || route.rewriteModel) return { ok: false, status: 400, code: 'model_required', message: `route "${route.name}" needs a JSON body naming a model.` };
    return { ok: true, body, model: undefined, upstreamModel: undefined, json: undefined };
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return { ok: false, status: 400, code: 'invalid_json', message: `route "${route.name}": the request body is not valid UTF-8.` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, status: 400, code: 'invalid_json', message: `route "${route.name}": the request body is not valid JSON (${(e as Error).message}).` };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return { ok: false, status: 400, code: 'invalid_json', message: `route "${route.name}": the request body must be a JSON object.` };
  }
  const obj = json as Record<string, unknown>;
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    return { ok: false, status: 400, code: 'duplicate_key', message: `route "${route.name}": the request body names ${JSON.stringify(clipKey(duplicate.key))} twice in one object (at ${clipKey(duplicate.at)}); parsers disagree on which one counts, so the router refuses it.` };
  }
  const lookalikes = modelLookalikes(obj);
  if (lookalikes.length > 0) {
    return { ok: false, status: 400, code: 'duplicate_key', message: `route "${route.name}": the request body has the key ${JSON.stringify(clipKey(lookalikes[0]!))}, which some parsers read as "model"; send the model only as "model".` };
  }
  const model = typeof obj.model === 'string' ? obj.model : undefined;
  if (route.models) {
    if (model === undefined) {
      return { ok: false, status: 400, code: 'model_required', message: `route "${route.name}" only allows listed models, and the request names none; set "model" to one of: ${route.models.join(', ')}.` };
    }
    if (!route.models.includes(model)) {
      return { ok: false, status: 403, code: 'model_not_allowed', model, message: `model "${model}" is not allowed on route "${route.name}"; allowed: ${route.models.join(', ')}.` };
    }
  }
  if (route.rewriteModel !== undefined && route.rewriteModel !== model) {
    obj.model = route.rewriteModel;
    return { ok: true, body: Buffer.from(JSON.stringify(obj)), model, upstreamModel: route.rewriteModel, json: obj };
  }
  return { ok: true, body, model, upstreamModel: model, json: obj };
}

function clipKey(s: string): string {
  return s.length <= 100 ? s : `${s.slice(0, 100)}…`;
}
