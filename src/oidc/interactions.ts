// The provider's side of the sign-in pages (http/interactions.ts): the interaction a browser is
// in, the app it signs in to, the Grant a consent becomes, and the end of the interaction. app.ts
// hands this to the pages, which never see the provider (the port they declare is SignInFlow).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { ConsentRequest, Interaction } from '../domain/interaction.ts';
import type { ConsentPlan } from '../services/consent.ts';

export function interactionFlow(provider: () => Provider) {
  return {
    /** The interaction of this browser; undefined when it has none (expired, or already finished). */
    async find(req: IncomingMessage, res: ServerResponse): Promise<Interaction | undefined> {
      let details: Awaited<ReturnType<Provider['interactionDetails']>>;
      try {
        details = await provider().interactionDetails(req, res);
      } catch {
        return undefined;
      }
      return {
        uid: details.uid,
        prompt: details.prompt.name,
        consentRequest: details.prompt.details as ConsentRequest,
        params: details.params,
        accountId: details.session?.accountId,
        grantId: details.grantId,
      };
    },

    /** The app a person signs in to: the name to show, and whether it is first-party. */
    async client(clientId: string): Promise<{ name: string; firstParty: boolean }> {
      const client = await provider().Client.find(clientId);
      return {
        name: client?.clientName ?? clientId,
        firstParty: (client as { first_party?: boolean } | undefined)?.first_party === true,
      };
    },

    /**
     * Records a consent as the plan says (services/consent.ts: what the person's roles allow is
     * granted, the rest refused). Resolves the new grant's id, `{}` when an existing grant was
     * extended, and undefined when the grant is gone.
     */
    async grant(interaction: Interaction, plan: ConsentPlan): Promise<{ grantId?: string } | undefined> {
      const { Grant } = provider();
      const accountId = interaction.accountId!;
      const clientId = String(interaction.params.client_id);
      const grant = interaction.grantId ? await Grant.find(interaction.grantId) : new Grant({ accountId, clientId });
      if (!grant) return undefined;
      if (plan.oidcScopes.length) grant.addOIDCScope(plan.oidcScopes.join(' '));
      if (plan.oidcClaims.length) grant.addOIDCClaims(plan.oidcClaims);
      for (const resource of plan.resources) {
        if (resource.granted.length) grant.addResourceScope(resource.identifier, resource.granted.join(' '));
        // Refused scopes count as answered, so the person is not asked again for them.
        if (resource.refused.length) grant.rejectResourceScope(resource.identifier, resource.refused.join(' '));
      }
      const grantId = await grant.save();
      return interaction.grantId ? {} : { grantId };
    },

    /** Ends the interaction with `result`; resolves where the browser goes next. */
    finish(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>): Promise<string> {
      return provider().interactionResult(req, res, result, { mergeWithLastSubmission: false });
    },
  };
}
