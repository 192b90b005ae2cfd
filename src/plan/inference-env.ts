import { INFERENCE_PORT, INFERENCE_SOCKET_PATH } from '../policy/addresses.js';
import type { InferenceConfig } from '../profile/inference.js';
import { defaultRouteName } from '../profile/route-default.js';

/**
 * The variables that point the workload at the router. Clients read the SDKs' usual base-URL
 * variables; the API-key variables are placeholders because the SDKs refuse to start without one,
 * and the router replaces whatever the caller sends.
 */
export function buildInferenceEnv(config: InferenceConfig, origin = `http://127.0.0.1:${INFERENCE_PORT}`): Record<string, string> {
  if (config.routes.length === 0) return {};
  const env: Record<string, string> = {
    CLAWJAIL_INFERENCE_URL: origin,
    CLAWJAIL_INFERENCE_SOCKET: INFERENCE_SOCKET_PATH,
  };
  const def = defaultRouteName(config);
  const pick = (api: 'openai' | 'anthropic') =>
    config.routes.find((r) => r.api === api && r.name === def) ?? config.routes.find((r) => r.api === api);
  const openai = pick('openai');
  if (openai) {
    env.OPENAI_BASE_URL = openai.name === def ? `${origin}/v1` : `${origin}/${openai.name}/v1`;
    env.OPENAI_API_KEY = 'clawjail-router';
  }
  const anthropic = pick('anthropic');
  if (anthropic) {
    // The Anthropic SDK appends /v1 itself.
    env.ANTHROPIC_BASE_URL = anthropic.name === def ? origin : `${origin}/${anthropic.name}`;
    env.ANTHROPIC_API_KEY = 'clawjail-router';
  }
  return env;
}
