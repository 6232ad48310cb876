import { AspectPriority, Aspects, CfnElement, Names } from 'aws-cdk-lib';
import { Construct, type IConstruct } from 'constructs';

/** Gives every CloudFormation element under `resources` the logical ID it would have if its resource were a direct
 * child of `owner`, as the detector's resources were before the construct was split into small constructs.
 *
 * Why: CloudFormation identifies a resource by its logical ID, and CDK derives the logical ID from the construct
 * path. Moving the device table under a child construct would make an upgrade create a new, empty table and retain
 * (or delete) the old one; a queue or topic policy created anew is cleared when its predecessor is deleted after it,
 * and an e-mail subscription created anew must be confirmed again. So what holds data or must not be replaced keeps
 * its old ID, decided in this one place; test/infra/logical-ids.test.ts pins the IDs to literals.
 *
 * Done at once, so the IDs are final before anyone exports or references them, and again by an aspect at synthesis
 * for what is added under a resource later (a subscription to the alarm topic). Resources outside `owner` (given by
 * the user) keep their own IDs. */
export function keepLogicalIds(owner: IConstruct, resources: ReadonlyArray<IConstruct | undefined>): void {
  const kept = resources.filter((r): r is IConstruct => r?.node.scopes.includes(owner) ?? false);
  const done = new WeakSet<CfnElement>();
  const keep = (node: IConstruct): void => {
    if (!CfnElement.isCfnElement(node) || done.has(node)) return;
    const scopes = node.node.scopes;
    const resource = kept.find((r) => scopes.includes(r));
    if (!resource) return;
    const ownerPath = scopes.slice(scopes.indexOf(node.stack) + 1, scopes.indexOf(owner) + 1);
    node.overrideLogicalId(logicalIdOf([...ownerPath, ...scopes.slice(scopes.indexOf(resource))]));
    done.add(node);
  };
  for (const resource of kept) for (const node of resource.node.findAll()) keep(node);
  Aspects.of(owner).add({ visit: keep }, { priority: AspectPriority.MUTATING });
}

/** The logical ID CDK gives the element at this path below its stack: Names.nodeUniqueId applies that same rule to a
 * path below the root, so it is asked about a detached copy of the path. */
function logicalIdOf(path: readonly IConstruct[]): string {
  let copy = new Construct(undefined as unknown as Construct, '');
  for (const scope of path) copy = new Construct(copy, scope.node.id);
  return Names.nodeUniqueId(copy.node);
}
